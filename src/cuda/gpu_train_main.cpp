// aero-gpu: train on an NVIDIA GPU from the command line, with the same run configuration,
// data, metrics and checkpoints as `aero train` (docs/gpu.md, "Training on the GPU").
//   aero-gpu train --out RUN_DIR [--config RUN.json | --preset P] [--rung R] [--set k=v]...
//                  [--overwrite] [--stop-after N] [--max-seconds S] [--device D] [-q]
//   aero-gpu train --resume RUN_DIR [--stop-after N] [--max-seconds S] [--device D] [-q]
//   aero-gpu eval RUN_DIR|CKPT [--max-batches N] [--json FILE] [--device D]
// Data parallel: `--gpus N` forks one process per GPU (rank i on device i); or start the
// processes yourself with --world N --rank R --id-file F [--device D].
// Built by the standalone CUDA build (no CLI11 there): a small hand-written parser.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "cuda/gpu_train.h"
#include "model/config.h"

namespace {

const char* kUsage =
    "usage:\n"
    "  aero-gpu train --out RUN_DIR [--config RUN.json | --preset NAME] [--rung RUNG]\n"
    "                 [--set KEY=VALUE]... [--overwrite] [--stop-after N] [--max-seconds S]\n"
    "                 [--device D] [-q] [--gpus N | --world N --rank R --id-file F]\n"
    "  aero-gpu train --resume RUN_DIR [--stop-after N] [--max-seconds S] [--device D] [-q]\n"
    "                 [--gpus N | --world N --rank R --id-file F]\n"
    "  aero-gpu eval RUN_DIR|CKPT [--max-batches N] [--json FILE] [--device D]\n"
    "--max-seconds stops with a checkpoint after S seconds (exit status 0; --resume continues).\n"
    "--gpus N: data parallel on GPUs 0..N-1, one process each (NCCL); train.batch_size is the\n"
    "global batch (divisible by N), so the run equals the one-GPU run. --world/--rank/--id-file\n"
    "start one such process by hand (id file: a new path shared by all; device defaults to rank).\n"
    "eval: validation loss/perplexity over every full chunk of the valid split (or N batches)\n"
    "and the mean attention entropy of each (layer, head), as JSON (`aero reproduce` reads it).\n"
    "The configuration is the JSON RunConfig of `aero config` (docs/config.md); --config without\n"
    "--preset uses the file alone, as `aero train` does. Run directories are shared with aero:\n"
    "`aero eval RUN_DIR` and `aero train --resume RUN_DIR` read what aero-gpu writes, and\n"
    "`aero-gpu train --resume RUN_DIR` continues a CPU run.\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "aero-gpu: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

double parse_double(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size() && std::isfinite(x)) return x;
  } catch (const std::exception&) {
  }
  usage_error(flag + " expects a number, got '" + v + "'");
}

long long parse_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  usage_error(flag + " expects an integer, got '" + v + "'");
}

// The ranks started by launch_ranks: a SIGTERM/SIGINT to the launcher is passed on to them.
pid_t g_ranks[64];
volatile sig_atomic_t g_nranks = 0;
void forward_signal(int sig) {
  for (int i = 0; i < g_nranks; ++i) kill(g_ranks[i], SIGTERM);
  _exit(128 + sig);
}

// --gpus N: run this command once per GPU (ranks 0..N-1 on devices 0..N-1) and wait for them.
// If one process fails, the others get 120 s to finish (rank 0 may be writing the stop
// checkpoint) before they are terminated (a lone survivor would wait in NCCL forever).
int launch_ranks(const std::vector<std::string>& args, int gpus) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || self.empty()) usage_error("--gpus: cannot find this executable (/proc/self/exe)");
  char tmpl[] = "/tmp/aero-gpu-XXXXXX";
  if (!mkdtemp(tmpl)) usage_error("--gpus: cannot create a temporary directory");
  const std::string dir = tmpl, id_file = dir + "/nccl-id";
  std::vector<pid_t> pids;
  for (int r = 0; r < gpus; ++r) {
    std::vector<std::string> a = {self, "train"};
    a.insert(a.end(), args.begin(), args.end());
    for (const char* x : {"--world", "--rank", "--id-file", "--device"}) a.push_back(x), a.push_back("");
    size_t n = a.size();
    a[n - 7] = std::to_string(gpus);
    a[n - 5] = std::to_string(r);
    a[n - 3] = id_file;
    a[n - 1] = std::to_string(r);
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("aero-gpu: fork");
      for (pid_t p : pids) kill(p, SIGTERM);
      return 1;
    }
    if (pid == 0) {
      std::vector<char*> av;
      for (auto& x : a) av.push_back(x.data());
      av.push_back(nullptr);
      execv(self.c_str(), av.data());
      std::perror("aero-gpu: execv");
      _exit(127);
    }
    pids.push_back(pid);
    g_ranks[r] = pid;
    g_nranks = r + 1;
    if (r == 0) {
      std::signal(SIGTERM, forward_signal);
      std::signal(SIGINT, forward_signal);
    }
  }
  std::vector<int> status(gpus, -1);
  int alive = gpus;
  bool failed = false, killed = false;
  std::chrono::steady_clock::time_point failed_at;
  while (alive > 0) {
    int st = 0;
    const pid_t p = waitpid(-1, &st, WNOHANG);
    if (p > 0) {
      for (int r = 0; r < gpus; ++r)
        if (pids[r] == p) {
          status[r] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
          --alive;
          if (status[r] != 0 && !failed) {
            failed = true;
            failed_at = std::chrono::steady_clock::now();
          }
        }
      continue;
    }
    if (p < 0) break;
    if (failed && !killed && std::chrono::steady_clock::now() - failed_at > std::chrono::seconds(120)) {
      for (int r = 0; r < gpus; ++r)
        if (status[r] < 0) {
          std::fprintf(stderr, "aero-gpu: terminating rank %d (another rank failed)\n", r);
          kill(pids[r], SIGTERM);
        }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::filesystem::remove_all(dir, ec);
  if (status[0] != 0) return status[0];
  for (int x : status)
    if (x != 0) return x;
  return 0;
}

int cmd_train(const std::vector<std::string>& args) {
  std::string out, resume, config_path, preset, rung, id_file;
  std::vector<std::string> sets;
  bool overwrite = false, quiet = false, device_set = false;
  long long stop_after = -1, device = 0, gpus = 0, world = 1, rank = 0;
  double max_seconds = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--out") out = value();
    else if (a == "--resume") resume = value();
    else if (a == "--config" || a == "-c") config_path = value();
    else if (a == "--preset") preset = value();
    else if (a == "--rung") rung = value();
    else if (a == "--set") sets.push_back(value());
    else if (a == "--overwrite") overwrite = true;
    else if (a == "-q" || a == "--quiet") quiet = true;
    else if (a == "--stop-after") stop_after = parse_int(a, value());
    else if (a == "--device") device = parse_int(a, value()), device_set = true;
    else if (a == "--max-seconds") max_seconds = parse_double(a, value());
    else if (a == "--gpus") gpus = parse_int(a, value());
    else if (a == "--world") world = parse_int(a, value());
    else if (a == "--rank") rank = parse_int(a, value());
    else if (a == "--id-file") id_file = value();
    else if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      return 0;
    } else usage_error("unknown argument '" + a + "'");
  }
  if (gpus != 0) {
    if (gpus < 1 || gpus > 64) usage_error("--gpus expects 1..64");
    if (world != 1 || !id_file.empty() || device_set)
      usage_error("--gpus starts the processes itself: do not combine it with --world, "
                  "--rank, --id-file or --device");
    if (gpus > 1) {
      std::vector<std::string> rest;
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--gpus") {
          ++i;
          continue;
        }
        rest.push_back(args[i]);
      }
      return launch_ranks(rest, int(gpus));
    }
  }
  if (world < 1 || rank < 0 || rank >= world) usage_error("--rank must be in [0, --world)");
  if (world > 1 && id_file.empty()) usage_error("--world needs --id-file");
  if (world > 1 && !device_set) device = rank;
  aero::cuda::GpuTrainOptions to;
  to.world = int(world);
  to.rank = int(rank);
  to.id_file = id_file;
  to.max_seconds = max_seconds;
  to.progress = !quiet;
  to.overwrite = overwrite;
  to.stop_after = stop_after;
  to.device = int(device);
  std::unique_ptr<aero::cuda::GpuTrainer> t;
  if (!resume.empty()) {
    if (!out.empty() || !config_path.empty() || !preset.empty() || !rung.empty() || !sets.empty())
      usage_error("--resume takes the configuration from the run's checkpoint; do not combine "
                  "it with --out, --config, --preset, --rung or --set");
    t = aero::cuda::GpuTrainer::resume(resume, to);
  } else {
    if (out.empty()) usage_error("train needs --out RUN_DIR (or --resume RUN_DIR)");
    to.out_dir = out;
    t = std::make_unique<aero::cuda::GpuTrainer>(
        aero::model::build_run_config(config_path, preset, rung, sets), to);
  }
  const auto& c = t->config();
  if (rank == 0)
    std::fprintf(stderr,
                 "aero-gpu train: %zu parameters, L=%d H=%d d=%d V=%d, %d steps x %d x %d x %d "
                 "tokens, data %s, device %lld%s\n",
                 t->model().num_parameters(), c.model.n_layer, c.model.n_head, c.model.d_model,
                 c.model.vocab_size, c.train.steps, c.train.batch_size, c.train.grad_accum,
                 c.train.seq_len, c.data.dir.empty() ? "synthetic (built in)" : c.data.dir.c_str(),
                 device, world > 1 ? (", rank 0 of " + std::to_string(world)).c_str() : "");
  const aero::cuda::GpuTrainSummary s = t->run();
  if (rank != 0) return s.diverged ? 1 : 0;
  if (s.diverged) {
    std::fprintf(stderr,
                 "aero-gpu: training stopped at step %lld: %s; the weights are saved in %s\n",
                 (long long)s.steps_done + 1, s.nonfinite.c_str(), s.checkpoint.c_str());
    return 1;
  }
  if (s.time_limited) {
    std::printf("stopped by --max-seconds at step %lld of %d, checkpoint %s; continue with "
                "aero-gpu train --resume\n",
                (long long)s.steps_done, c.train.steps, s.checkpoint.c_str());
    return 0;
  }
  std::printf("steps %lld, last val_loss %.4f (ppl %.3f), checkpoint %s\n",
              (long long)s.steps_done, s.val_loss, std::exp(s.val_loss), s.checkpoint.c_str());
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  std::string target, json_path;
  long long max_batches = 0, device = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--max-batches") max_batches = parse_int(a, value());
    else if (a == "--json") json_path = value();
    else if (a == "--device") device = parse_int(a, value());
    else if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      return 0;
    } else if (!a.empty() && a[0] != '-' && target.empty()) target = a;
    else usage_error("unknown argument '" + a + "'");
  }
  if (target.empty()) usage_error("eval needs a run directory or checkpoint");
  auto t = aero::cuda::GpuTrainer::for_eval(target, int(device));
  const aero::cuda::GpuEval e = t->evaluate_valid(max_batches);
  const auto& c = t->config();
  nlohmann::json j = {{"checkpoint", target},
                      {"step", t->steps_done()},
                      {"split", c.data.valid_split},
                      {"val_loss", std::isfinite(e.ce) ? nlohmann::json(e.ce) : nlohmann::json(nullptr)},
                      {"val_ppl", std::isfinite(e.ppl) ? nlohmann::json(e.ppl) : nlohmann::json(nullptr)},
                      {"chunks", e.chunks},
                      {"tokens", e.chunks * uint64_t(c.train.seq_len)},
                      {"seq_len", c.train.seq_len},
                      {"entropy", e.entropy},
                      {"device", "gpu"}};
  if (json_path.empty())
    std::printf("%s\n", j.dump(2).c_str());
  else
    aero::write_file_atomic(json_path, j.dump(2) + "\n");
  std::fprintf(stderr, "aero-gpu eval: %llu chunks of %d tokens, val_loss %.4f, ppl %.3f\n",
               (unsigned long long)e.chunks, c.train.seq_len, e.ce, e.ppl);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::printf("%s", kUsage);
    return args.empty() ? 2 : 0;
  }
  try {
    if (args[0] == "train") return cmd_train({args.begin() + 1, args.end()});
    if (args[0] == "eval") return cmd_eval({args.begin() + 1, args.end()});
    usage_error("unknown command '" + args[0] + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aero-gpu: error: %s\n", e.what());
    return 1;
  }
}
