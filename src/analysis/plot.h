// Plots as files a person can open: a small SVG writer for the charts the analysis needs
// (line charts with several series, heatmaps with a colour bar, bar charts / histograms),
// and PNG through rsvg-convert (Debian librsvg2-bin). Every chart carries a title, axis
// labels (with units in the label text) and a legend when it has more than one series.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace aero::analysis {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One line of a line chart. Non-finite y values (NaN, inf) break the line into pieces;
// they are not drawn. An empty colour picks the next one of the built-in palette.
struct Series {
  std::string name;
  std::vector<double> x, y;
  std::string color;
  bool dashed = false;
  bool markers = false;  // a dot at every point (useful for sparse series, e.g. evaluations)
};

struct LineChart {
  std::string title, subtitle;
  std::string x_label, y_label;  // include units, e.g. "step", "loss (nats/token)"
  bool log_x = false, log_y = false;
  std::vector<Series> series;
  double width = 860, height = 480;
};

// A matrix of values drawn as coloured cells, row 0 at the top; NaN cells are grey and
// marked "NaN". `annotate` writes each value in its cell (with `decimals` digits).
struct Heatmap {
  std::string title, subtitle;
  std::string x_label, y_label, colorbar_label;
  int rows = 0, cols = 0;
  std::vector<double> values;  // row-major, rows * cols
  std::vector<std::string> row_names, col_names;  // empty: 0, 1, 2, ...
  double vmin = kNaN, vmax = kNaN;  // colour range; NaN = the finite data range
  bool annotate = true;
  int decimals = 2;
};

// Grouped bars: one group per category, one bar per BarSeries within each group.
struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category
  std::string color;
};
struct BarChart {
  std::string title, subtitle;
  std::string x_label, y_label;
  std::vector<std::string> categories;
  std::vector<BarSeries> series;
  bool annotate = true;      // value printed above each bar
  std::string value_suffix;  // e.g. "%" for the annotations
  int decimals = 1;
  double width = 860, height = 480;
};

std::string render_svg(const LineChart& chart);
std::string render_svg(const Heatmap& chart);
std::string render_svg(const BarChart& chart);

// A histogram of `values` with `bins` equal bins over [lo, hi] (the last bin closed), as a
// bar chart of counts. Non-finite values are left out and counted in the subtitle.
BarChart histogram(const std::vector<double>& values, int bins, double lo, double hi,
                   const std::string& title, const std::string& x_label);

// Writes `svg` to BASE.svg and rasterizes it to BASE.png (white background) with
// rsvg-convert. Throws aero::Error naming the file, or saying rsvg-convert is missing
// (package librsvg2-bin, installed by scripts/setup.sh). Returns the paths written.
std::vector<std::string> write_plot(const std::string& svg, const std::string& base, bool png = true);

// Helpers shared with the tests.
// "Nice" axis ticks (1, 2, 5 x 10^k steps) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Short tick label: 0.001, 2.5, 1200, 35k, 1.2M, 1e-05.
std::string format_number(double v);
// Labels for one axis with a common unit suffix: {0, 5000, 10000} -> {"0", "5k", "10k"}.
std::vector<std::string> format_ticks(const std::vector<double>& ticks);
std::string xml_escape(const std::string& s);
// Colour of a value t in [0,1] on the heatmap ramp, "#rrggbb".
std::string ramp_color(double t);
// The i-th colour of the categorical palette.
std::string palette_color(size_t i);

}  // namespace aero::analysis
