#include "train/metrics_log.h"

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/files.h"

namespace aero::train {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) : path_(path) {
  if (keep_through_step >= 0 && file_exists(path)) {
    std::istringstream in(read_file(path));
    std::string line, kept;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        continue;  // a line cut short by a crash
      }
      if (j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() > keep_through_step)
        continue;
      kept += line + "\n";
    }
    write_file_atomic(path, kept);
    f_ = std::fopen(path.c_str(), "a");
  } else {
    f_ = std::fopen(path.c_str(), "w");
  }
  AERO_CHECK(f_, "cannot open metrics log ", path, ": ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!f_) return;
  const std::string s = record.dump() + "\n";
  AERO_CHECK(std::fwrite(s.data(), 1, s.size(), f_) == s.size() && std::fflush(f_) == 0,
             "cannot write metrics log ", path_, ": ", std::strerror(errno));
}

}  // namespace aero::train
