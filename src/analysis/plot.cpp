// SVG charts written by hand (no plotting dependency): fixed layout, text sized by an
// estimate of glyph width, legends outside the plot area so they never hide data.
#include "analysis/plot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/process.h"

namespace aero::analysis {
namespace {

constexpr const char* kFont = "DejaVu Sans, Liberation Sans, Arial, sans-serif";

// Approximate text width in pixels (DejaVu Sans averages ~0.6 em per glyph).
double text_width(const std::string& s, double font_size) { return 0.6 * font_size * s.size(); }

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

struct Svg {
  std::ostringstream o;
  Svg(double w, double h) {
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << fmt(w) << "\" height=\"" << fmt(h)
      << "\" viewBox=\"0 0 " << fmt(w) << " " << fmt(h) << "\" font-family=\"" << kFont << "\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << fmt(w) << "\" height=\"" << fmt(h)
      << "\" fill=\"#ffffff\"/>\n";
  }
  // anchor: start | middle | end; rotate: degrees about (x, y).
  void text(double x, double y, const std::string& s, double size, const std::string& anchor = "middle",
            const std::string& cls = "", double rotate = 0, const std::string& fill = "#222222",
            bool bold = false) {
    o << "<text x=\"" << fmt(x) << "\" y=\"" << fmt(y) << "\" font-size=\"" << fmt(size)
      << "\" text-anchor=\"" << anchor << "\" fill=\"" << fill << "\"";
    if (bold) o << " font-weight=\"bold\"";
    if (!cls.empty()) o << " class=\"" << cls << "\"";
    if (rotate != 0) o << " transform=\"rotate(" << fmt(rotate) << " " << fmt(x) << " " << fmt(y) << ")\"";
    o << ">" << xml_escape(s) << "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
            const std::string& extra = "") {
    o << "<line x1=\"" << fmt(x1) << "\" y1=\"" << fmt(y1) << "\" x2=\"" << fmt(x2) << "\" y2=\""
      << fmt(y2) << "\" stroke=\"" << stroke << "\" stroke-width=\"" << fmt(width) << "\"" << extra
      << "/>\n";
  }
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra = "") {
    o << "<rect x=\"" << fmt(x) << "\" y=\"" << fmt(y) << "\" width=\"" << fmt(w) << "\" height=\""
      << fmt(h) << "\" fill=\"" << fill << "\"" << extra << "/>\n";
  }
  std::string str() {
    o << "</svg>\n";
    return o.str();
  }
};

void title_block(Svg& svg, double width, const std::string& title, const std::string& subtitle) {
  svg.text(width / 2, 28, title, 18, "middle", "title", 0, "#111111", true);
  if (!subtitle.empty()) svg.text(width / 2, 48, subtitle, 12, "middle", "subtitle", 0, "#555555");
}

// An axis mapping data values to pixels, linear or log10, with its ticks.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // data range shown
  std::vector<double> ticks;
  double p0 = 0, p1 = 1;  // pixel positions of lo and hi
  double map(double v) const {
    double a = log ? std::log10(v) : v, l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
    return p0 + (a - l) / (h - l) * (p1 - p0);
  }
  bool usable(double v) const { return std::isfinite(v) && (!log || v > 0); }
};

// tight: a linear axis ends at the data rather than at the next round tick when that is far.
Axis make_axis(double lo, double hi, bool log, int target, bool tight = false) {
  Axis a;
  a.log = log;
  if (!(lo <= hi)) {  // no data
    lo = log ? 1 : 0;
    hi = log ? 10 : 1;
  }
  if (log) {
    double l = std::log10(lo), h = std::log10(hi);
    if (h - l < 1e-9) {
      l -= 0.5;
      h += 0.5;
    }
    double fl = std::floor(l), ch = std::ceil(h);
    if (h - l > 2) {  // decades
      a.lo = std::pow(10, fl);
      a.hi = std::pow(10, ch);
      int step = static_cast<int>(std::ceil((ch - fl) / 8));
      for (double e = fl; e <= ch + 1e-9; e += step) a.ticks.push_back(std::pow(10, e));
    } else {  // less than two decades: 1-2-5 ticks inside a slightly padded range
      double pad = 0.04 * (h - l);
      a.lo = std::pow(10, l - pad);
      a.hi = std::pow(10, h + pad);
      for (double e = fl - 1; e <= ch; ++e)
        for (double m : {1.0, 2.0, 5.0}) {
          double t = m * std::pow(10, e);
          if (t >= a.lo && t <= a.hi) a.ticks.push_back(t);
        }
      if (a.ticks.size() < 3) {
        a.ticks.clear();
        for (double t : nice_ticks(a.lo, a.hi, target))
          if (t >= a.lo && t <= a.hi && t > 0) a.ticks.push_back(t);
      }
    }
    return a;
  }
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    double d = std::max(std::fabs(lo) * 0.1, 1e-3);
    lo -= d;
    hi += d;
  }
  a.ticks = nice_ticks(lo, hi, target);
  a.lo = std::min(lo, a.ticks.front());
  a.hi = std::max(hi, a.ticks.back());
  if (tight) {  // end at the data unless the next round tick is close (within 8% of the range)
    double slack = 0.08 * (hi - lo);
    if (lo - a.ticks.front() > slack) a.lo = lo;
    if (a.ticks.back() - hi > slack) a.hi = hi;
    std::vector<double> kept;
    for (double t : a.ticks)
      if (t >= a.lo - 1e-9 * (hi - lo) && t <= a.hi + 1e-9 * (hi - lo)) kept.push_back(t);
    a.ticks = kept;
  }
  return a;
}

std::string hex(int r, int g, int b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", std::clamp(r, 0, 255), std::clamp(g, 0, 255),
                std::clamp(b, 0, 255));
  return buf;
}

double luminance(const std::string& c) {
  unsigned r = 0, g = 0, b = 0;
  std::sscanf(c.c_str(), "#%02x%02x%02x", &r, &g, &b);
  return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
}

// Legend to the right of the plot area: a swatch (line or box) and the name per entry.
struct LegendEntry {
  std::string name, color;
  bool dashed = false, box = false;
};
double legend_width(const std::vector<LegendEntry>& es) {
  double w = 0;
  for (auto& e : es) w = std::max(w, text_width(e.name, 12));
  return es.empty() ? 0 : w + 48;
}
void draw_legend(Svg& svg, double x, double y, const std::vector<LegendEntry>& es) {
  if (es.empty()) return;
  svg.o << "<g class=\"legend\">\n";
  double w = legend_width(es) - 8;
  svg.rect(x, y, w, 10 + 18.0 * es.size(), "#ffffff", " stroke=\"#bbbbbb\" stroke-width=\"1\"");
  for (size_t i = 0; i < es.size(); ++i) {
    double yy = y + 17 + 18.0 * i;
    if (es[i].box)
      svg.rect(x + 8, yy - 9, 18, 10, es[i].color);
    else
      svg.line(x + 6, yy - 4, x + 28, yy - 4, es[i].color, 2.5,
               es[i].dashed ? " stroke-dasharray=\"6 3\"" : "");
    svg.text(x + 34, yy, es[i].name, 12, "start", "legend-entry");
  }
  svg.o << "</g>\n";
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string r;
  r.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&apos;"; break;
      default: r += c;
    }
  }
  return r;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  double raw = (hi - lo) / std::max(1, target - 1);
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw * 0.999) {
      step = m * mag;
      break;
    }
  double start = std::floor(lo / step + 1e-9) * step, end = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> t;
  for (int i = 0; start + i * step <= end + step * 1e-6 && i < 100; ++i) {
    double v = start + i * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // avoid "-0" and 1e-17
    t.push_back(v);
  }
  return t;
}

namespace {
// 1.0e-05 -> "1e-5", 2.5e-04 -> "2.5e-4"
std::string format_sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", v);
  std::string s = buf;
  auto e = s.find('e');
  std::string mant = s.substr(0, e), ex = s.substr(e + 1);
  if (mant.size() > 2 && mant.compare(mant.size() - 2, 2, ".0") == 0) mant.resize(mant.size() - 2);
  bool neg = ex[0] == '-';
  size_t k = 1;
  while (k + 1 < ex.size() && ex[k] == '0') ++k;
  return mant + "e" + (neg ? "-" : "") + ex.substr(k);
}
}  // namespace

std::string format_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
  char buf[32];
  double a = std::fabs(v);
  auto trim = [](std::string s) {
    if (s.find('.') != std::string::npos && s.find('e') == std::string::npos) {
      while (!s.empty() && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
    }
    return s;
  };
  if (a == 0) return "0";
  if (a >= 1e9) return trim((std::snprintf(buf, sizeof buf, "%.2f", v / 1e9), buf)) + "G";
  if (a >= 1e6) return trim((std::snprintf(buf, sizeof buf, "%.2f", v / 1e6), buf)) + "M";
  if (a >= 1e4) return trim((std::snprintf(buf, sizeof buf, "%.2f", v / 1e3), buf)) + "k";
  if (a < 1e-3) return format_sci(v);
  std::snprintf(buf, sizeof buf, "%.4f", v);
  std::string s = trim(buf);
  // keep at most 4 significant digits
  std::snprintf(buf, sizeof buf, "%.4g", v);
  std::string g = buf;
  return g.size() < s.size() && g.find('e') == std::string::npos ? g : s;
}

std::vector<std::string> format_ticks(const std::vector<double>& ticks) {
  double mx = 0;
  for (double t : ticks) mx = std::max(mx, std::fabs(t));
  if (mx > 0 && mx < 1e-2) {  // small values (learning rates): all in scientific notation
    std::vector<std::string> out;
    for (double t : ticks) out.push_back(t == 0 ? "0" : format_sci(t));
    return out;
  }
  double unit = mx >= 1e9 ? 1e9 : mx >= 1e6 ? 1e6 : mx >= 1e4 ? 1e3 : 1;
  const char* suffix = unit == 1e9 ? "G" : unit == 1e6 ? "M" : unit == 1e3 ? "k" : "";
  std::vector<std::string> out;
  for (double t : ticks) {
    if (unit == 1 || t == 0) {
      out.push_back(format_number(t));
      continue;
    }
    std::string s = format_number(t / unit);
    out.push_back(s + suffix);
  }
  return out;
}

std::string palette_color(size_t i) {
  static const char* kPalette[] = {"#1f5fa8", "#e0701b", "#2a9a3c", "#c8283c", "#7a4fb0",
                                   "#8a5a44", "#d65db1", "#6b6b6b", "#a8a312", "#17a2b8"};
  return kPalette[i % (sizeof kPalette / sizeof kPalette[0])];
}

std::string ramp_color(double t) {
  // Dark indigo -> blue -> teal -> green -> yellow: monotone in lightness, readable in grey.
  static const double kStops[][3] = {
      {30, 16, 72}, {50, 82, 160}, {32, 146, 140}, {120, 196, 84}, {246, 230, 80}};
  if (!std::isfinite(t)) return "#bdbdbd";
  t = std::clamp(t, 0.0, 1.0) * 4;
  int i = std::min(3, static_cast<int>(t));
  double f = t - i;
  auto mix = [&](int c) { return static_cast<int>(std::lround(kStops[i][c] + f * (kStops[i + 1][c] - kStops[i][c]))); };
  return hex(mix(0), mix(1), mix(2));
}

std::string render_svg(const LineChart& c) {
  // Data ranges over the usable points of every series.
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  size_t points = 0;
  for (auto& s : c.series) {
    AERO_CHECK(s.x.size() == s.y.size(), "plot '", c.title, "': series '", s.name, "' has ", s.x.size(),
               " x values and ", s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if ((c.log_x && s.x[i] <= 0) || (c.log_y && s.y[i] <= 0)) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
      ++points;
    }
  }
  std::vector<LegendEntry> legend;
  for (size_t i = 0; i < c.series.size(); ++i)
    legend.push_back({c.series[i].name, c.series[i].color.empty() ? palette_color(i) : c.series[i].color,
                      c.series[i].dashed, false});
  bool show_legend = c.series.size() > 1;  // one series: the title says what it is
  double lw = show_legend ? legend_width(legend) + 16 : 0;
  double W = c.width + lw, H = c.height;
  double top = c.subtitle.empty() ? 50 : 66, left = 84, bottom = 62, right = 24 + lw;

  Axis ax = make_axis(xlo, xhi, c.log_x, 7, true), ay = make_axis(ylo, yhi, c.log_y, 6);
  ax.p0 = left;
  ax.p1 = W - right;
  ay.p0 = H - bottom;
  ay.p1 = top;

  Svg svg(W, H);
  title_block(svg, W, c.title, c.subtitle);
  svg.rect(left, top, ax.p1 - left, ay.p0 - top, "#fbfbfb", " stroke=\"#888888\" stroke-width=\"1\"");
  svg.o << "<g class=\"x-axis\">\n";
  auto xlabels = format_ticks(ax.ticks);
  for (size_t i = 0; i < ax.ticks.size(); ++i) {
    double t = ax.ticks[i];
    if (t < ax.lo - 1e-12 || t > ax.hi * (1 + 1e-12) + 1e-12) continue;
    double x = ax.map(t);
    svg.line(x, top, x, ay.p0, "#e4e4e4", 1);
    svg.line(x, ay.p0, x, ay.p0 + 5, "#444444", 1);
    svg.text(x, ay.p0 + 19, xlabels[i], 12, "middle", "tick");
  }
  svg.text((left + ax.p1) / 2, H - 16, c.x_label + (c.log_x ? " (log scale)" : ""), 14, "middle", "x-label");
  svg.o << "</g>\n<g class=\"y-axis\">\n";
  auto ylabels = format_ticks(ay.ticks);
  for (size_t i = 0; i < ay.ticks.size(); ++i) {
    double t = ay.ticks[i];
    if (t < ay.lo - 1e-12 || t > ay.hi * (1 + 1e-12) + 1e-12) continue;
    double y = ay.map(t);
    svg.line(left, y, ax.p1, y, "#e4e4e4", 1);
    svg.line(left - 5, y, left, y, "#444444", 1);
    svg.text(left - 8, y + 4, ylabels[i], 12, "end", "tick");
  }
  svg.text(22, (top + ay.p0) / 2, c.y_label + (c.log_y ? " (log scale)" : ""), 14, "middle", "y-label", -90);
  svg.o << "</g>\n";
  if (points == 0) svg.text((left + ax.p1) / 2, (top + ay.p0) / 2, "no data", 16, "middle", "no-data", 0, "#999999");

  for (size_t si = 0; si < c.series.size(); ++si) {
    auto& s = c.series[si];
    const std::string& color = legend[si].color;
    svg.o << "<g class=\"series\" data-name=\"" << xml_escape(s.name) << "\">\n";
    std::string d;
    bool pen = false;
    size_t drawn = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      bool ok = ax.usable(s.x[i]) && ay.usable(s.y[i]);
      if (!ok) {
        pen = false;
        continue;
      }
      d += (pen ? " L" : " M") + fmt(ax.map(s.x[i])) + " " + fmt(ay.map(s.y[i]));
      pen = true;
      ++drawn;
    }
    if (!d.empty())
      svg.o << "<path d=\"" << d.substr(1) << "\" fill=\"none\" stroke=\"" << color
            << "\" stroke-width=\"2\" stroke-linejoin=\"round\""
            << (s.dashed ? " stroke-dasharray=\"6 3\"" : "") << "/>\n";
    if (s.markers || drawn == 1)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (ax.usable(s.x[i]) && ay.usable(s.y[i]))
          svg.o << "<circle cx=\"" << fmt(ax.map(s.x[i])) << "\" cy=\"" << fmt(ay.map(s.y[i]))
                << "\" r=\"3\" fill=\"" << color << "\"/>\n";
    svg.o << "</g>\n";
  }
  if (show_legend) draw_legend(svg, W - lw, top, legend);
  return svg.str();
}

std::string render_svg(const Heatmap& h) {
  AERO_CHECK(h.rows > 0 && h.cols > 0, "heatmap '", h.title, "': needs at least one row and column (got ",
             h.rows, " x ", h.cols, ")");
  AERO_CHECK(h.values.size() == static_cast<size_t>(h.rows) * h.cols, "heatmap '", h.title, "': ",
             h.values.size(), " values for ", h.rows, " x ", h.cols, " cells");
  double vmin = h.vmin, vmax = h.vmax;
  double dlo = INFINITY, dhi = -INFINITY;
  for (double v : h.values)
    if (std::isfinite(v)) dlo = std::min(dlo, v), dhi = std::max(dhi, v);
  if (!std::isfinite(vmin)) vmin = std::isfinite(dlo) ? dlo : 0;
  if (!std::isfinite(vmax)) vmax = std::isfinite(dhi) ? dhi : 1;
  if (vmax <= vmin) vmax = vmin + 1;

  double cell = std::clamp(std::min(640.0 / h.cols, 520.0 / h.rows), 12.0, 64.0);
  auto name = [](const std::vector<std::string>& names, int i) {
    return i < static_cast<int>(names.size()) ? names[i] : std::to_string(i);
  };
  double row_label_w = 0;
  for (int r = 0; r < h.rows; ++r) row_label_w = std::max(row_label_w, text_width(name(h.row_names, r), 12));
  double top = h.subtitle.empty() ? 56 : 72;
  double left = 40 + row_label_w + 10;
  double gw = cell * h.cols, gh = cell * h.rows;
  double cb_x = left + gw + 28, cb_w = 18;
  double content = cb_x + cb_w + 60 + 24;
  double W = std::max({content, 420.0, text_width(h.title, 18) * 1.12 + 40,
                       text_width(h.subtitle, 12) + 40}),
         H = top + gh + 64;
  // centre the grid and colour bar when the title makes the picture wider than they are
  double shift = (W - content) / 2;
  left += shift;
  cb_x += shift;

  Svg svg(W, H);
  title_block(svg, W, h.title, h.subtitle);
  bool annotate = h.annotate && cell >= 22;
  double fs = std::clamp(cell * 0.3, 8.0, 13.0);
  svg.o << "<g class=\"cells\">\n";
  for (int r = 0; r < h.rows; ++r)
    for (int c = 0; c < h.cols; ++c) {
      double v = h.values[static_cast<size_t>(r) * h.cols + c];
      std::string col = ramp_color(std::isfinite(v) ? (v - vmin) / (vmax - vmin) : NAN);
      double x = left + c * cell, y = top + r * cell;
      svg.rect(x, y, cell, cell, col, " stroke=\"#ffffff\" stroke-width=\"0.5\"");
      if (annotate || !std::isfinite(v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.*f", h.decimals, v);
        std::string label = std::isfinite(v) ? std::string(buf) : "NaN";
        if (text_width(label, fs) < cell - 2 || !std::isfinite(v))
          svg.text(x + cell / 2, y + cell / 2 + fs * 0.35, label, std::min(fs, cell * 0.3), "middle", "cell",
                   0, luminance(col) > 0.5 ? "#111111" : "#ffffff");
      }
    }
  svg.o << "</g>\n";
  svg.rect(left, top, gw, gh, "none", " stroke=\"#666666\" stroke-width=\"1\"");
  int step_c = std::max(1, static_cast<int>(std::ceil(24.0 / cell)));
  for (int c = 0; c < h.cols; c += step_c)
    svg.text(left + (c + 0.5) * cell, top + gh + 16, name(h.col_names, c), 12, "middle", "tick");
  int step_r = std::max(1, static_cast<int>(std::ceil(14.0 / cell)));
  for (int r = 0; r < h.rows; r += step_r)
    svg.text(left - 6, top + (r + 0.5) * cell + 4, name(h.row_names, r), 12, "end", "tick");
  svg.text(left + gw / 2, H - 16, h.x_label, 14, "middle", "x-label");
  svg.text(left - row_label_w - 22, top + gh / 2, h.y_label, 14, "middle", "y-label", -90);

  // Colour bar: a vertical gradient, high values on top, with its own ticks and label.
  svg.o << "<defs><linearGradient id=\"cbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int i = 0; i <= 16; ++i)
    svg.o << "<stop offset=\"" << fmt(i / 16.0) << "\" stop-color=\"" << ramp_color(i / 16.0) << "\"/>";
  svg.o << "</linearGradient></defs>\n<g class=\"colorbar\">\n";
  svg.rect(cb_x, top, cb_w, gh, "url(#cbar)", " stroke=\"#666666\" stroke-width=\"1\"");
  for (double t : nice_ticks(vmin, vmax, 5)) {
    if (t < vmin - 1e-12 || t > vmax + 1e-12) continue;
    double y = top + gh - (t - vmin) / (vmax - vmin) * gh;
    svg.line(cb_x + cb_w, y, cb_x + cb_w + 4, y, "#444444", 1);
    svg.text(cb_x + cb_w + 7, y + 4, format_number(t), 11, "start", "tick");
  }
  svg.text(cb_x + cb_w + 52, top + gh / 2, h.colorbar_label, 13, "middle", "colorbar-label", -90);
  svg.o << "</g>\n";
  return svg.str();
}

std::string render_svg(const BarChart& b) {
  size_t nc = b.categories.size();
  AERO_CHECK(nc > 0 && !b.series.empty(), "bar chart '", b.title, "': needs categories and at least one series");
  double vmax = 0, vmin = 0;
  for (auto& s : b.series) {
    AERO_CHECK(s.values.size() == nc, "bar chart '", b.title, "': series '", s.name, "' has ", s.values.size(),
               " values for ", nc, " categories");
    for (double v : s.values)
      if (std::isfinite(v)) vmax = std::max(vmax, v), vmin = std::min(vmin, v);
  }
  std::vector<LegendEntry> legend;
  for (size_t i = 0; i < b.series.size(); ++i)
    legend.push_back({b.series[i].name, b.series[i].color.empty() ? palette_color(i) : b.series[i].color, false,
                      true});
  bool show_legend = b.series.size() > 1;
  double lw = show_legend ? legend_width(legend) + 16 : 0;
  double W = b.width + lw, H = b.height;
  size_t label_lines = 1;
  for (auto& c : b.categories) label_lines = std::max(label_lines, size_t(1 + std::count(c.begin(), c.end(), '\n')));
  double top = b.subtitle.empty() ? 50 : 66, left = 84, bottom = 62 + 15.0 * (label_lines - 1), right = 24 + lw;
  Axis ay = make_axis(vmin, vmax > vmin ? vmax * 1.08 : 1, false, 6);
  ay.p0 = H - bottom;
  ay.p1 = top;
  double pw = W - right - left;

  Svg svg(W, H);
  title_block(svg, W, b.title, b.subtitle);
  svg.rect(left, top, pw, ay.p0 - top, "#fbfbfb", " stroke=\"#888888\" stroke-width=\"1\"");
  svg.o << "<g class=\"y-axis\">\n";
  auto ylabels = format_ticks(ay.ticks);
  for (size_t i = 0; i < ay.ticks.size(); ++i) {
    double y = ay.map(ay.ticks[i]);
    svg.line(left, y, left + pw, y, "#e4e4e4", 1);
    svg.line(left - 5, y, left, y, "#444444", 1);
    svg.text(left - 8, y + 4, ylabels[i], 12, "end", "tick");
  }
  svg.text(22, (top + ay.p0) / 2, b.y_label, 14, "middle", "y-label", -90);
  svg.o << "</g>\n";
  double slot = pw / nc, gwid = slot * 0.8, bw = gwid / b.series.size();
  // Category labels: '\n' starts a new line; labels too wide for their slot are rotated.
  auto lines_of = [](const std::string& s) {
    std::vector<std::string> v;
    size_t p = 0;
    for (size_t e; (e = s.find('\n', p)) != std::string::npos; p = e + 1) v.push_back(s.substr(p, e - p));
    v.push_back(s.substr(p));
    return v;
  };
  double max_label = 0;
  for (auto& c : b.categories)
    for (auto& l : lines_of(c)) max_label = std::max(max_label, text_width(l, 12));
  bool rotate = max_label > slot - 4;
  for (size_t c = 0; c < nc; ++c) {
    double cx = left + (c + 0.5) * slot;
    auto ls = lines_of(b.categories[c]);
    for (size_t i = 0; i < ls.size(); ++i) {
      if (rotate)
        svg.text(cx, ay.p0 + 16 + 13.0 * i, ls[i], 11, "end", "tick", -30);
      else
        svg.text(cx, ay.p0 + 19 + 15.0 * i, ls[i], 12, "middle", "tick");
    }
  }
  for (size_t si = 0; si < b.series.size(); ++si) {
    svg.o << "<g class=\"series\" data-name=\"" << xml_escape(b.series[si].name) << "\">\n";
    for (size_t c = 0; c < nc; ++c) {
      double v = b.series[si].values[c];
      double x = left + c * slot + (slot - gwid) / 2 + si * bw;
      if (!std::isfinite(v)) {
        svg.text(x + bw / 2, ay.map(0) - 4, "n/a", 10, "middle", "value", 0, "#888888");
        continue;
      }
      double y0 = ay.map(0), y1 = ay.map(v);
      svg.rect(x + 1, std::min(y0, y1), std::max(bw - 2, 1.0), std::fabs(y1 - y0), legend[si].color,
               " class=\"bar\"");
      if (b.annotate) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.*f", b.decimals, v);
        double fs = std::clamp(bw * 0.35, 8.0, 12.0);
        svg.text(x + bw / 2, std::min(y0, y1) - 4, buf + b.value_suffix, fs, "middle", "value");
      }
    }
    svg.o << "</g>\n";
  }
  svg.text(left + pw / 2, H - 12, b.x_label, 14, "middle", "x-label");
  if (show_legend) draw_legend(svg, W - lw, top, legend);
  return svg.str();
}

BarChart histogram(const std::vector<double>& values, int bins, double lo, double hi, const std::string& title,
                   const std::string& x_label) {
  AERO_CHECK(bins > 0 && hi > lo, "histogram '", title, "': needs bins > 0 and hi > lo (got ", bins, ", [", lo,
             ", ", hi, "])");
  BarChart b;
  b.title = title;
  b.x_label = x_label;
  b.y_label = "count";
  b.decimals = 0;
  BarSeries s{"count", std::vector<double>(bins, 0.0), ""};
  size_t skipped = 0;
  for (double v : values) {
    if (!std::isfinite(v) || v < lo || v > hi) {
      ++skipped;
      continue;
    }
    int i = std::min(bins - 1, static_cast<int>((v - lo) / (hi - lo) * bins));
    s.values[i] += 1;
  }
  for (int i = 0; i < bins; ++i)
    b.categories.push_back(format_number(lo + (hi - lo) * i / bins) + "-" + format_number(lo + (hi - lo) * (i + 1) / bins));
  b.series.push_back(std::move(s));
  b.subtitle = std::to_string(values.size() - skipped) + " values";
  if (skipped) b.subtitle += ", " + std::to_string(skipped) + " non-finite or out of range left out";
  return b;
}

namespace {
// The rasterizer: $AERO_RSVG_CONVERT if set, else rsvg-convert found on PATH.
std::string find_rsvg() {
  if (const char* e = std::getenv("AERO_RSVG_CONVERT"); e && *e) return access(e, X_OK) == 0 ? e : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t s = 0;
  while (s <= p.size()) {
    size_t e = p.find(':', s);
    if (e == std::string::npos) e = p.size();
    std::string dir = p.substr(s, e - s);
    if (!dir.empty()) {
      std::string cand = dir + "/rsvg-convert";
      if (access(cand.c_str(), X_OK) == 0) return cand;
    }
    s = e + 1;
  }
  return "";
}
}  // namespace

std::vector<std::string> write_plot(const std::string& svg, const std::string& base, bool png) {
  std::string svg_path = base + ".svg", png_path = base + ".png";
  auto slash = base.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(base.substr(0, slash));
  write_file_atomic(svg_path, svg);
  std::vector<std::string> out{svg_path};
  if (!png) return out;
  std::string tool = find_rsvg();
  AERO_CHECK(!tool.empty(), "cannot write ", png_path, ": rsvg-convert not found",
             std::getenv("AERO_RSVG_CONVERT") ? " (AERO_RSVG_CONVERT is set but not executable)" : " on PATH",
             "; install the Debian package librsvg2-bin (scripts/setup.sh does), or pass --no-png");
  const int rc = run_process({tool, "--background-color=white", "-o", png_path, svg_path});
  AERO_CHECK(rc == 0, "rsvg-convert failed to rasterize ", svg_path, " into ", png_path, " (", tool,
             " exit status ", rc, ")");
  out.push_back(png_path);
  return out;
}

}  // namespace aero::analysis
