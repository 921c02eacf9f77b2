// The SVG writer: structure (well-formed XML, title, labels, one group per series, legend),
// tick choice, and PNG output through rsvg-convert.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "analysis/plot.h"
#include "core/error.h"
#include "core/files.h"
#include "xml_check.h"

using namespace aero::analysis;
using aero::test::count_of;
using aero::test::xml_problem;

namespace {
std::string temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("aero_test_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}
}  // namespace

TEST(XmlCheck, CatchesMalformedInput) {
  EXPECT_EQ(xml_problem("<svg><g></g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=b></svg>"), "");
  EXPECT_NE(xml_problem("<svg>a & b</svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
}

TEST(Plot, NiceTicksCoverTheRangeWithRoundSteps) {
  auto t = nice_ticks(0.13, 9.7, 6);
  ASSERT_GE(t.size(), 3u);
  EXPECT_LE(t.front(), 0.13);
  EXPECT_GE(t.back(), 9.7);
  double step = t[1] - t[0];
  double mant = step / std::pow(10, std::floor(std::log10(step)));
  EXPECT_TRUE(std::fabs(mant - 1) < 1e-9 || std::fabs(mant - 2) < 1e-9 || std::fabs(mant - 2.5) < 1e-9 ||
              std::fabs(mant - 5) < 1e-9)
      << step;
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-9);
  auto z = nice_ticks(-1, 1, 5);
  EXPECT_NE(std::find(z.begin(), z.end(), 0.0), z.end());
}

TEST(Plot, FormatNumberIsShort) {
  EXPECT_EQ(format_number(0), "0");
  EXPECT_EQ(format_number(2.5), "2.5");
  EXPECT_EQ(format_number(1200), "1200");
  EXPECT_EQ(format_number(35000), "35k");
  EXPECT_EQ(format_number(1.2e6), "1.2M");
  EXPECT_EQ(format_number(14.4955e9), "14.5G");
  EXPECT_EQ(format_number(0.001), "0.001");
  EXPECT_EQ(format_number(1e-5), "1e-5");
  EXPECT_EQ(format_number(-2.5e-4), "-2.5e-4");
  EXPECT_EQ(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

TEST(Plot, LineChartHasTitleLabelsSeriesAndLegend) {
  LineChart c;
  c.title = "Training loss <run A & B>";
  c.x_label = "step";
  c.y_label = "loss (nats/token)";
  for (int s = 0; s < 3; ++s) {
    Series se;
    se.name = "series " + std::to_string(s);
    for (int i = 0; i < 50; ++i) {
      se.x.push_back(i * 10);
      se.y.push_back(5.0 / (1 + 0.1 * i) + s);
    }
    c.series.push_back(se);
  }
  c.series[1].y[20] = NAN;  // a gap: two pieces in one path
  std::string svg = render_svg(c);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find("Training loss &lt;run A &amp; B&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">step<"), std::string::npos);
  EXPECT_NE(svg.find(">loss (nats/token)<"), std::string::npos);
  EXPECT_EQ(count_of(svg, "class=\"series\""), 3u);
  EXPECT_EQ(count_of(svg, "class=\"legend-entry\""), 3u);
  EXPECT_NE(svg.find(">series 2<"), std::string::npos);
  // the NaN splits series 1 into two subpaths (two "M" commands)
  auto g = svg.find("data-name=\"series 1\"");
  auto d = svg.find("d=\"", g);
  auto e = svg.find('"', d + 3);
  EXPECT_EQ(count_of(svg.substr(d, e - d), "M"), 2u);
  EXPECT_GE(count_of(svg, "class=\"tick\""), 6u);
}

TEST(Plot, LogAxisUsesDecadesAndSkipsNonPositive) {
  LineChart c;
  c.title = "lr";
  c.x_label = "step";
  c.y_label = "learning rate";
  c.log_y = true;
  c.series.push_back({"lr", {0, 1, 2, 3, 4}, {1e-5, 1e-4, 1e-3, 0, 1e-2}, "", false, false});
  std::string svg = render_svg(c);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find(">1e-5<"), std::string::npos);
  EXPECT_NE(svg.find(">0.01<"), std::string::npos);
  EXPECT_NE(svg.find("(log scale)"), std::string::npos);
  // the zero is dropped: the path has 2 pieces
  auto d = svg.find("<path d=\"");
  auto e = svg.find('"', d + 9);
  EXPECT_EQ(count_of(svg.substr(d, e - d), "M"), 2u);
}

TEST(Plot, EmptyLineChartSaysNoData) {
  LineChart c;
  c.title = "empty";
  c.series.push_back({"a", {1, 2}, {NAN, NAN}, "", false, false});
  std::string svg = render_svg(c);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find("no data"), std::string::npos);
}

TEST(Plot, MismatchedSeriesIsAnError) {
  LineChart c;
  c.title = "bad";
  c.series.push_back({"a", {1, 2, 3}, {1, 2}, "", false, false});
  try {
    render_svg(c);
    FAIL() << "expected an error";
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
  }
}

TEST(Plot, HeatmapHasOneCellPerValueAndAColorBar) {
  Heatmap h;
  h.title = "Head entropy";
  h.x_label = "head";
  h.y_label = "layer";
  h.colorbar_label = "entropy (nats)";
  h.rows = 3;
  h.cols = 4;
  for (int i = 0; i < 12; ++i) h.values.push_back(i * 0.3);
  h.values[5] = NAN;
  std::string svg = render_svg(h);
  EXPECT_EQ(xml_problem(svg), "");
  auto cells = svg.substr(svg.find("class=\"cells\""), svg.find("</g>", svg.find("class=\"cells\"")) -
                                                          svg.find("class=\"cells\""));
  EXPECT_EQ(count_of(cells, "<rect"), 12u);
  EXPECT_EQ(count_of(cells, ">NaN<"), 1u);
  EXPECT_NE(svg.find("#bdbdbd"), std::string::npos);  // the NaN cell is grey
  EXPECT_NE(svg.find("linearGradient"), std::string::npos);
  EXPECT_NE(svg.find(">entropy (nats)<"), std::string::npos);
  EXPECT_NE(svg.find(">3.30<"), std::string::npos);  // annotated max value
  // the lowest and highest values get the ends of the ramp
  EXPECT_NE(cells.find(ramp_color(0)), std::string::npos);
  EXPECT_NE(cells.find(ramp_color(1)), std::string::npos);
  h.values.pop_back();
  EXPECT_THROW(render_svg(h), aero::Error);
}

TEST(Plot, RampIsMonotoneInLightness) {
  double prev = -1;
  for (int i = 0; i <= 20; ++i) {
    unsigned r, g, b;
    std::sscanf(ramp_color(i / 20.0).c_str(), "#%02x%02x%02x", &r, &g, &b);
    double l = 0.299 * r + 0.587 * g + 0.114 * b;
    EXPECT_GT(l, prev) << i;
    prev = l;
  }
}

TEST(Plot, BarChartAndHistogram) {
  BarChart b;
  b.title = "Bins";
  b.x_label = "entropy bin";
  b.y_label = "heads (%)";
  b.categories = {"a", "b", "c", "d"};
  b.series.push_back({"run 1", {4, 14, 74, 8}, ""});
  b.series.push_back({"run 2", {33, 10, 12, 45}, ""});
  b.value_suffix = "%";
  std::string svg = render_svg(b);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_of(svg, "class=\"bar\""), 8u);
  EXPECT_NE(svg.find(">74.0%<"), std::string::npos);
  EXPECT_EQ(count_of(svg, "class=\"legend-entry\""), 2u);

  auto h = histogram({0.1, 0.2, 0.9, 1.0, NAN, 0.55}, 4, 0, 1, "hist", "value");
  ASSERT_EQ(h.series.size(), 1u);
  EXPECT_EQ(h.series[0].values, (std::vector<double>{2, 0, 1, 2}));
  EXPECT_NE(h.subtitle.find("1 non-finite"), std::string::npos);
  EXPECT_EQ(xml_problem(render_svg(h)), "");
}

TEST(Plot, WritesSvgAndPng) {
  std::string dir = temp_dir("plot");
  LineChart c;
  c.title = "t";
  c.x_label = "x";
  c.y_label = "y";
  c.series.push_back({"s", {0, 1, 2}, {1, 4, 9}, "", false, true});
  auto files = write_plot(render_svg(c), dir + "/sub/chart");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(aero::file_exists(dir + "/sub/chart.svg"));
  std::string png = aero::read_file(dir + "/sub/chart.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  std::filesystem::remove_all(dir);
}

TEST(Plot, MissingRasterizerIsAClearError) {
  std::string dir = temp_dir("plot_norsvg");
  setenv("AERO_RSVG_CONVERT", "/nonexistent/rsvg-convert", 1);
  try {
    write_plot("<svg xmlns=\"http://www.w3.org/2000/svg\"/>", dir + "/x");
    unsetenv("AERO_RSVG_CONVERT");
    FAIL() << "expected an error";
  } catch (const aero::Error& e) {
    unsetenv("AERO_RSVG_CONVERT");
    std::string m = e.what();
    EXPECT_NE(m.find("rsvg-convert"), std::string::npos) << m;
    EXPECT_NE(m.find("librsvg2-bin"), std::string::npos) << m;
    EXPECT_NE(m.find("x.png"), std::string::npos) << m;
  }
  std::filesystem::remove_all(dir);
}

TEST(Plot, TickLabelsOfOneAxisShareTheirUnit) {
  EXPECT_EQ(format_ticks({0, 5000, 10000}), (std::vector<std::string>{"0", "5k", "10k"}));
  EXPECT_EQ(format_ticks({0, 0.5, 1}), (std::vector<std::string>{"0", "0.5", "1"}));
  EXPECT_EQ(format_ticks({1e6, 2e6, 2.5e6}), (std::vector<std::string>{"1M", "2M", "2.5M"}));
  EXPECT_EQ(format_ticks({0, 5e-4, 1e-3}), (std::vector<std::string>{"0", "5e-4", "1e-3"}));
}
