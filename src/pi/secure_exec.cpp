// 2PC executor (see secure_exec.h): dealer side and party side of each operator next to
// each other, one code path, bit-exact with FixedExec.
#include "pi/secure_exec.h"

#include <cmath>
#include <deque>
#include <optional>

#include "core/error.h"
#include "mpc/compare.h"
#include "mpc/dpf.h"
#include "mpc/linear.h"
#include "mpc/lut.h"
#include "mpc/truncation.h"

namespace aero::pi {
using mpc::u64;
constexpr int W = SecureExec::kWidth, WIDE = SecureExec::kWide;

// GateCounter: a replica of mpc::Meter's accounting (transport.cpp) for both parties.
void GateCounter::on_send(int p, const std::string& tag, double b) {
  if (p == 0) {
    per_op_[tag].bytes_sent += b;
    bytes_ += b;
  }
  sent_since_recv_[p] = true;
}
void GateCounter::on_recv(int p, const std::string& tag, double b) {
  if (p == 0) {
    per_op_[tag].bytes_recv += b;
    bytes_ += b;
  }
  if (sent_since_recv_[p]) {
    rounds_[p] += 1;
    if (p == 0) per_op_[tag].rounds += 1;
  }
  sent_since_recv_[p] = false;
}
void GateCounter::exchange(const std::string& tag, double payload, double elements) {
  for (int p = 0; p < 2; ++p) on_send(p, tag, kHeader + payload);
  for (int p = 0; p < 2; ++p) on_recv(p, tag, kHeader + payload);
  per_op_[tag].elements += elements;
  per_op_[tag].count += 1;
}
void GateCounter::send(const std::string& tag, int from, double payload, double elements) {
  on_send(from, tag, kHeader + payload);
  on_recv(1 - from, tag, kHeader + payload);
  per_op_[tag].elements += elements;
  per_op_[tag].count += 1;
}
void GateCounter::keys(const std::string& tag, double p0, double p1) {
  auto& t = per_op_[tag];
  t.key_bytes[0] += p0, t.key_bytes[1] += p1;
  keys_[0] += p0, keys_[1] += p1;
}
void GateCounter::work(const std::string& tag, double macs, double aes_blocks) {
  auto& t = per_op_[tag];
  t.gemm_macs += macs, t.fss_blocks += aes_blocks;
}

// Tag of the operator the enclosed gates are metered under, in every mode (party mode: the
// mpc gate opens its own OpScope of the same name; see SecureExec::push_tag).
class TagScope {
 public:
  TagScope(SecureExec& ex, const std::string& t) : ex_(ex) { ex_.push_tag(t); }
  ~TagScope() { ex_.pop_tag(); }
  TagScope(const TagScope&) = delete;
  TagScope& operator=(const TagScope&) = delete;

 private:
  SecureExec& ex_;
};

void SecureExec::settle_keys() {
  if (!d_) return;
  const size_t w = d_->written(1);
  key_by_tag_[tags_.back()] += double(w - key_mark_);
  key_mark_ = w;
}
void SecureExec::push_tag(const std::string& t) {
  settle_keys();
  tags_.push_back(t);
}
void SecureExec::pop_tag() {
  settle_keys();
  tags_.pop_back();
}
std::map<std::string, double> SecureExec::key_bytes_by_op() {
  settle_keys();
  return key_by_tag_;
}

namespace {
// FSS evaluation work (AES blocks, one party) for the compute estimate of the cost model.
double dcf_aes(size_t n, int bits, int points = 1) { return 2.0 * double(n) * bits * points; }
// Full-domain DPF evaluations (one per looked-up element and term): the exact AES count.
double lut_aes(size_t n, const mpc::DpfParams& p) { return double(n) * mpc::dpf_eval_all_aes(p); }
}  // namespace

// One round of independent gates: in dealer mode each gate deals at once (same order as the
// parties), in party mode each computes this party's share and run() opens them all in one
// message each way (mpc::open_many); in count mode each gate charges its exact key bytes and
// run() charges the one frame each way. Outputs live until the round is destroyed.
class SRound {
 public:
  using V = std::vector<u64>;
  SRound(SecureExec& ex, const char* tag) : ex_(ex), d_(ex.d_), p_(ex.p_), c_(ex.c_), tag_(tag) {
    if (p_) scope_.emplace(p_->peer, tag);
    ex_.push_tag(tag_);
  }
  ~SRound() { ex_.pop_tag(); }
  SRound(const SRound&) = delete;
  SRound& operator=(const SRound&) = delete;
  V& trunc(const V& x, mpc::TruncSpec t) {
    if (t.is_free()) {  // stochastic truncate-reduce: local, no opening
      V y = d_ ? mpc::trunc_free_mask(x, t.in_bits, t.shift) : mpc::trunc_free_eval(x, t.in_bits, t.shift);
      for (auto& e : y) e = mpc::mod_w(e, t.out_bits);
      out_.push_back(std::move(y));
      return out_.back();
    }
    if (c_) {
      const bool low = t.faithful && t.shift > 0, high = t.out_bits > t.in_bits - t.shift && !t.bounded;
      return count(x.size(), t.out_bits, mpc::trunc_key_bytes(t, x.size(), 0), mpc::trunc_key_bytes(t, x.size(), 1),
                   (low ? dcf_aes(x.size(), t.shift) : 0) + (high ? dcf_aes(x.size(), t.in_bits) : 0));
    }
    return add([&] { return mpc::trunc_deal(*d_, t, x); }, [&] { return mpc::trunc_shares(*p_, t, x); }, t.out_bits);
  }
  V& drelu(const V& x, int in_w, int out_w) {
    mpc::CompareSpec c{in_w, out_w};
    if (c_)
      return count(x.size(), out_w, mpc::drelu_key_bytes(c, x.size(), 0), mpc::drelu_key_bytes(c, x.size(), 1),
                   dcf_aes(x.size(), in_w - 1));
    return add([&] { return mpc::drelu_deal(*d_, c, x); }, [&] { return mpc::drelu_shares(*p_, c, x); }, out_w);
  }
  V& relu(const V& x, int w) {
    mpc::CompareSpec c{w, w};
    if (c_)
      return count(x.size(), w, mpc::relu_key_bytes(c, x.size(), 0), mpc::relu_key_bytes(c, x.size(), 1),
                   dcf_aes(x.size(), w - 1));
    return add([&] { return mpc::relu_deal(*d_, c, x); }, [&] { return mpc::relu_shares(*p_, c, x); }, w);
  }
  // ReLU of x and DReLU of x - c_k from one DCF key (mpc::relu_cmp): {relu, comparisons}.
  std::pair<V*, V*> relu_cmp(const V& x, const mpc::ReluCmpSpec& s) {
    if (c_) {
      const size_t n = x.size(), K = s.offsets.size();
      count(n, s.relu_bits, mpc::relu_cmp_key_bytes(s, n, 0), mpc::relu_cmp_key_bytes(s, n, 1),
            dcf_aes(n, s.in_bits - 1, int(1 + K)));
      count(n * K, s.cmp_bits, 0, 0);
      return {&out_[out_.size() - 2], &out_.back()};
    }
    out_.emplace_back();
    out_.emplace_back();
    V* a = &out_[out_.size() - 2];
    V* b = &out_.back();
    if (d_) {
      auto all = mpc::relu_cmp_deal(*d_, s, x);
      a->assign(all.begin(), all.begin() + std::ptrdiff_t(x.size()));
      b->assign(all.begin() + std::ptrdiff_t(x.size()), all.end());
    } else {
      auto [r, c] = mpc::relu_cmp_shares(*p_, s, x);
      ops_.push_back({std::move(r), s.relu_bits});
      dst_.push_back(out_.size() - 2);
      ops_.push_back({std::move(c), s.cmp_bits});
      dst_.push_back(out_.size() - 1);
    }
    return {a, b};
  }
  // mpc::relu_split's first round: deals / reads its ONE key here (the parties read keys in
  // dealing order) into *key and opens the comparisons (n K bits at s.cmp_bits).
  V& relu_split_cmp(const V& x, const mpc::ReluSplitSpec& s, mpc::ReluSplitKey* key) {
    const size_t n = x.size(), K = s.offsets.size();
    if (c_)
      return count(n * K, s.cmp_bits, mpc::relu_split_key_bytes(s, n, 0), mpc::relu_split_key_bytes(s, n, 1),
                   dcf_aes(n, s.in_bits - 1, int(K)));
    if (!d_) *key = mpc::relu_split_read(*p_, s, n);
    return add([&] { return mpc::relu_split_deal(*d_, s, x); }, [&] { return mpc::relu_split_cmp_shares(*p_, *key, x); },
               s.cmp_bits);
  }
  // mpc::relu_split's later round: relu(x)'s unmasked shares (relu_bits) replace the last
  // gate's opening b by ONE opening of relu - b (b's fresh mask hides the sum); no key bytes,
  // no opening of its own. Dealer: relu's mask is 0, so the output mask is -r_b.
  V& relu_split_sub_last(const V& x, const mpc::ReluSplitSpec& s, const mpc::ReluSplitKey& key) {
    if (c_) c_->work(tag_, 0, dcf_aes(x.size(), s.in_bits - 1));
    if (c_ || d_) return rsub_last(V(x.size(), 0), s.relu_bits);
    return rsub_last(mpc::relu_split_relu_shares(*p_, key, x), s.relu_bits);
  }
  // Truncating ReLU / leaky ReLU (mpc::relu_trunc), one opening at s.out_bits.
  V& relu_trunc(const V& x, const mpc::ReluTruncSpec& s) {
    if (c_)
      return count(x.size(), s.out_bits, mpc::relu_trunc_key_bytes(s, x.size(), 0),
                   mpc::relu_trunc_key_bytes(s, x.size(), 1), dcf_aes(x.size(), s.in_bits - 1));
    return add([&] { return mpc::relu_trunc_deal(*d_, s, x); }, [&] { return mpc::relu_trunc_shares(*p_, s, x); },
               s.out_bits);
  }
  V& mul(const V& a, const V& b, int w) {
    if (c_) return count(a.size(), w, mpc::mul_key_bytes(a.size(), w, 0), mpc::mul_key_bytes(a.size(), w, 1));
    return add([&] { return mpc::mul_deal(*d_, a, b, w); }, [&] { return mpc::mul_shares(*p_, a, b, w); }, w);
  }
  // Lookup (mpc::lut) of the table in ls (entries mod 2^out_bits; leaf_bits: the DPF's early
  // termination).
  V& lut(const V& idx, const mpc::LutSpec& ls) {
    const int in_bits = ls.in_bits, out_bits = ls.out_bits;
    if (c_)
      return count(idx.size(), out_bits, mpc::lut_key_bytes(in_bits, out_bits, idx.size(), 0, ls.leaf_bits),
                   mpc::lut_key_bytes(in_bits, out_bits, idx.size(), 1, ls.leaf_bits),
                   double(idx.size()) * mpc::lut_aes_per_element(ls));
    V i(idx.size());
    for (size_t k = 0; k < i.size(); ++k) i[k] = mpc::mod_w(idx[k], in_bits);
    return add([&] { return mpc::lut_deal(*d_, ls, i); }, [&] { return mpc::lut_shares(*p_, ls, i); }, out_bits);
  }
  // Selected lookup (mpc::lut_sel): out_i = sum_k sel_(k,i) T_k[idx_(k,i)], selector bits
  // masked mod 2, K blocks of n; one opening of n values.
  V& lut_sel(const V& idx, const V& sel, int in_bits, int out_bits, const std::vector<const std::vector<int64_t>*>& tabs) {
    const size_t K = tabs.size(), n = idx.size() / K;
    if (c_)
      return count(n, out_bits, mpc::lut_sel_key_bytes(in_bits, out_bits, K, n, 0),
                   mpc::lut_sel_key_bytes(in_bits, out_bits, K, n, 1), lut_aes(idx.size(), {in_bits, out_bits, true}));
    mpc::LutSelSpec ls{in_bits, out_bits, K, {}};
    for (const auto* t : tabs) {
      ls.tables.emplace_back(t->size());
      for (size_t k = 0; k < t->size(); ++k) ls.tables.back()[k] = mpc::mod_w(u64((*t)[k]), out_bits);
    }
    V i(idx.size()), sv(sel.size());
    for (size_t k = 0; k < i.size(); ++k) i[k] = mpc::mod_w(idx[k], in_bits), sv[k] = sel[k] & 1;
    return add([&] { return mpc::lut_sel_deal(*d_, ls, i, sv); }, [&] { return mpc::lut_sel_shares(*p_, ls, i, sv); },
               out_bits);
  }
  // Vector-payload selected lookup (mpc::lut_vec): out_i[c] = sum_k sel_(k,i) T_k[idx_(k,i)]
  // z'_i[c], one opening of n x width values at ls.open_bits(); ls carries the tables (party
  // mode) or only the shape (dealer and count modes).
  V& lut_vec(const V& idx, const V& sel, const V& z, const mpc::LutVecSpec& ls) {
    const size_t n = z.size() / ls.width;
    if (c_) {
      const auto w = mpc::lut_vec_work(ls, n);
      c_->work(tag_, w.macs, 0);
      return count(n * ls.width, ls.open_bits(), mpc::lut_vec_key_bytes(ls, n, 0), mpc::lut_vec_key_bytes(ls, n, 1),
                   w.aes_blocks);
    }
    V i(idx.size()), sv(sel.size());
    for (size_t k = 0; k < i.size(); ++k) i[k] = mpc::mod_w(idx[k], ls.in_bits), sv[k] = sel[k] & 1;
    return add([&] { return mpc::lut_vec_deal(*d_, ls, i, sv, z); }, [&] { return mpc::lut_vec_shares(*p_, ls, i, sv, z); },
               ls.open_bits());
  }
  V& matmul(const mpc::BatchMatShape& s, const V& a, const V& b, int w) {
    if (c_) {
      c_->work(tag_, 3.0 * double(s.batch) * double(s.mat.m) * double(s.mat.k) * double(s.mat.n), 0);
      return count(s.out_count(), w, mpc::matmul_ss_batch_key_bytes(s, w, 0), mpc::matmul_ss_batch_key_bytes(s, w, 1));
    }
    return add([&] { return mpc::matmul_ss_batch_deal(*d_, s, a, b, w); },
               [&] { return mpc::matmul_ss_batch_shares(*p_, s, a, b, w); }, w);
  }
  // Multiplies the last gate's pending opening (a share, or the dealer's mask) by public k mod
  // 2^w: the opening then reveals k times the masked value under the mask k r (combine with
  // sub_last_two, whose other term's fresh mask hides the result).
  V& scale_last(u64 k, int w) {
    V& b = last_opening("scale_last");
    for (auto& e : b) e = mpc::mod_w(e * k, w);
    return out_.back();
  }
  // Replaces the last two gates' openings (same width w) by ONE opening of their difference
  // a - b (output mask r_a - r_b, uniform as r_a is): the caller needs only a - b.
  V& sub_last_two(int w) {
    AERO_CHECK(out_.size() >= 2 && (d_ || (ops_.size() >= 2 && dst_.back() == out_.size() - 1 &&
                                           dst_[dst_.size() - 2] == out_.size() - 2)),
               "SRound::sub_last_two: the last two gates must both open");
    V a = std::move(out_[out_.size() - 2]), b = std::move(out_.back());
    out_.pop_back();
    out_.pop_back();
    if (!d_) {
      a = std::move(ops_[ops_.size() - 2].share);
      b = std::move(ops_.back().share);
      ops_.pop_back();
      ops_.pop_back();
      dst_.pop_back();
      dst_.pop_back();
    }
    for (size_t k = 0; k < a.size(); ++k) a[k] = mpc::mod_w(a[k] - b[k], w);
    if (d_) {
      out_.push_back(std::move(a));
    } else {
      out_.emplace_back();
      ops_.push_back({std::move(a), w});
      dst_.push_back(out_.size() - 1);
    }
    return out_.back();
  }
  // Replaces the last gate's opening of K blocks of n bits (width 1, shares mod 2) by ONE
  // opening of the blocks' XOR (n bits): XOR is addition mod 2, so each party XORs its shares
  // and the dealer its masks; the XOR's mask is uniform as each block's is, and the opening
  // shows less than the K bits it replaces. For callers that need only the XOR (GELU's clamp
  // selector lo xor hi).
  V& xor_fold_last(size_t K) {
    V& b = last_opening("xor_fold_last");
    AERO_CHECK(d_ || ops_.back().w == 1, "SRound::xor_fold_last: the last gate must open bits");
    AERO_CHECK(K > 0 && b.size() % K == 0, "SRound::xor_fold_last: ", b.size(), " bits are not ", K, " blocks");
    const size_t n = b.size() / K;
    V f(n, 0);
    for (size_t j = 0; j < K; ++j)
      for (size_t k = 0; k < n; ++k) f[k] ^= b[j * n + k] & 1;
    b = std::move(f);
    return out_.back();
  }
  // Replaces the last gate's opening b (width w) by one opening of a - b, where a is a value
  // that is never opened alone: this party's share of a (party mode) or a's mask (dealer mode).
  V& rsub_last(const V& a, int w) {
    V& b = last_opening("rsub_last");
    AERO_CHECK(b.size() == a.size(), "SRound::rsub_last: ", a.size(), " values for an opening of ", b.size());
    for (size_t k = 0; k < a.size(); ++k) b[k] = mpc::mod_w(a[k] - b[k], w);
    if (!d_) ops_.back().w = w;
    return out_.back();
  }
  void run() {
    if (d_ || ops_.empty()) return;
    if (c_) {  // one frame each way holding every opening, packed per gate (mpc::open_many)
      double payload = 0, elems = 0;
      for (const auto& o : ops_) payload += double(mpc::packed_bytes(o.share.size(), o.w)), elems += double(o.share.size());
      c_->exchange(tag_, payload, elems);
      for (size_t k = 0; k < ops_.size(); ++k) out_[dst_[k]] = std::move(ops_[k].share);
      ops_.clear();
      dst_.clear();
      return;
    }
    auto r = mpc::open_many(*p_, std::move(ops_));
    for (size_t k = 0; k < r.size(); ++k) out_[dst_[k]] = std::move(r[k]);
    ops_.clear();
    dst_.clear();
  }

 private:
  // The last gate's pending opening: this party's share (party and count modes) or its mask
  // (dealer mode).
  V& last_opening(const char* who) {
    AERO_CHECK(!out_.empty() && (d_ || (!ops_.empty() && dst_.back() == out_.size() - 1)), "SRound::", who,
               ": the last gate must open");
    return d_ ? out_.back() : ops_.back().share;
  }
  // Count mode: charges the gate's key bytes and queues a zero share of its opening.
  V& count(size_t n, int w, size_t k0, size_t k1, double aes = 0) {
    c_->keys(tag_, double(k0), double(k1));
    c_->work(tag_, 0, aes);
    out_.emplace_back();
    ops_.push_back({V(n, 0), w});
    dst_.push_back(out_.size() - 1);
    return out_.back();
  }
  template <class Deal, class Share>
  V& add(Deal deal, Share share, int w) {
    out_.emplace_back();
    if (d_) {
      out_.back() = deal();
    } else {
      ops_.push_back({share(), w});
      dst_.push_back(out_.size() - 1);
    }
    return out_.back();
  }
  SecureExec& ex_;
  mpc::Dealer* d_;
  mpc::Party* p_;
  GateCounter* c_;
  std::string tag_;
  std::optional<mpc::OpScope> scope_;
  std::deque<V> out_;
  std::vector<mpc::Opening> ops_;
  std::vector<size_t> dst_;  // out_ index of each opening
};

namespace {
// InvPowLut's table [e * 2^M + j] split into one table of 2^M entries per MSB e (the terms of
// invpow's selected lookup); slot 63 (never an MSB of a positive 64-bit input) holds
// InvPowLut::eval's v <= 0 case (treated as 1): table[0] at index 0, the term's public index
// (0 elsewhere, so a vector lookup converts one leaf for it).
std::vector<std::vector<int64_t>> split(const InvPowLut& L) {
  const int m = 1 << L.mantissa;
  std::vector<std::vector<int64_t>> t(64);
  for (int e = 0; e < 63; ++e) t[e].assign(L.table().begin() + ptrdiff_t(e) * m, L.table().begin() + ptrdiff_t(e + 1) * m);
  t[63].assign(size_t(m), 0);
  t[63][0] = L.table()[0];
  return t;
}
}  // namespace

SecureExec::SecureExec(mpc::Dealer* dealer, mpc::Party* party, GateCounter* counter, const FxSpec& spec,
                       mpc::Block model_seed)
    : d_(dealer),
      p_(party),
      c_(counter),
      s_(spec),
      seed_(model_seed),
      gelu_(spec),
      exp_(spec),
      inv_(-1.0, spec.exp_frac(), spec.inv_frac(), spec.inv_mantissa),
      rsqrt_(-0.5, 2 * spec.f, spec.rsqrt_out_frac, spec.inv_mantissa),
      inv_tabs_(split(inv_)),
      rsqrt_tabs_(split(rsqrt_)),
      inv_fold_(spec) {
  AERO_CHECK((d_ != nullptr) + (p_ != nullptr) + (c_ != nullptr) == 1,
             "SecureExec: exactly one of dealer / party / counter");
  if (spec.exp_one_round()) {
    exp_lut_ = {spec.exp_index_bits(), WIDE, std::vector<u64>(exp_.one_round.size()), kExpLeafBits};
    for (size_t k = 0; k < exp_.one_round.size(); ++k) exp_lut_.table[k] = mpc::mod_w(u64(exp_.one_round[k]), WIDE);
  }
  if (d_) key_mark_ = d_->written(1);
}

SecureExec::SecureExec(mpc::Dealer* dealer, mpc::Party* party, const FxSpec& spec, mpc::Block model_seed)
    : SecureExec(dealer, party, nullptr, spec, model_seed) {}

SecureExec::SecureExec(GateCounter* counter, const FxSpec& spec) : SecureExec(nullptr, nullptr, counter, spec, {0, 0}) {}

std::vector<u64> SecureExec::constant(size_t n, int64_t c, int w) const {
  return std::vector<u64>(n, dealer() ? 0 : mpc::mod_w(u64(c), w));
}

std::vector<u64> SecureExec::affine(const V& x, int64_t k, int64_t c, int w) const {
  V o(x.size());
  for (size_t i = 0; i < o.size(); ++i) o[i] = mpc::mod_w(u64(k) * x[i] + (dealer() ? 0 : u64(c)), w);
  return o;
}

std::vector<u64> SecureExec::trunc(const V& x, int shift, int in_w, int out_w, const char* tag) {
  if (tspec(in_w, shift, out_w).is_free()) {  // local: no operator tag (nothing to meter)
    V y = mpc::trunc_free_eval(x, in_w, shift);  // the same map on masks and masked values
    for (auto& e : y) e = mpc::mod_w(e, out_w);
    return y;
  }
  SRound r(*this, tag);
  auto& y = r.trunc(x, tspec(in_w, shift, out_w));
  r.run();
  return y;
}

std::vector<u64> SecureExec::at_width(const SWire& x, int w) {
  if (x.pending) return trunc(x.v, x.pending, x.w, w, x.pending_tag);
  if (x.w == w) return x.v;
  if (x.w > w) {
    V o(x.v.size());
    for (size_t k = 0; k < o.size(); ++k) o[k] = mpc::mod_w(x.v[k], w);
    return o;
  }
  return trunc(x.v, 0, x.w, w, "widen");
}

// A private input of `owner` (x: its values, ignored elsewhere), metered as "input".
std::vector<u64> SecureExec::input(int owner, const V& x, size_t n, int w) {
  if (p_) return mpc::input_eval(*p_, owner, x, n, w);
  TagScope ts(*this, "input");
  if (dealer()) return mpc::input_deal(*d_, owner, n, w);
  c_->keys(tag(), double(mpc::input_key_bytes(n, w, owner, 0)), double(mpc::input_key_bytes(n, w, owner, 1)));
  c_->send(tag(), owner, double(mpc::packed_bytes(n, w)), double(n));
  return V(n, 0);
}

SWire SecureExec::input_client(const std::vector<double>& x, int rows, int cols) {
  size_t n = size_t(rows) * cols;
  SWire y{rows, cols, {}, WIDE};
  std::vector<u64> enc;
  if (client()) {
    enc.assign(n, 0);
    for (size_t k = 0; k < n; ++k) enc[k] = u64(encode(x[k], s_.f));
  }
  y.v = input(mpc::kClient, enc, n, WIDE);
  return y;
}

std::vector<double> SecureExec::output_client(const SWire& y) {
  if (counting()) {  // the mask goes to the client's key stream; no online traffic
    c_->keys(tag(), double(mpc::output_key_bytes(y.v.size(), y.w, mpc::kClient, 0)),
             double(mpc::output_key_bytes(y.v.size(), y.w, mpc::kClient, 1)));
    return {};
  }
  if (dealer()) {
    mpc::output_deal(*d_, mpc::kClient, y.v, y.w);
    return {};
  }
  auto v = mpc::output_eval(*p_, mpc::kClient, y.v, y.w);
  if (p_->id != mpc::kClient) return {};
  std::vector<double> r(v.size());
  for (size_t k = 0; k < v.size(); ++k) r[k] = decode(mpc::to_signed(v[k], y.w), s_.f);
  return r;
}

// Normalized LUT (fixed_point.h InvPowLut) on a wire v of width vw with vmin <= v < 2^max_e,
// in 2 rounds (invpow_index, then invpow_lookup or invpow_times) over the candidate MSBs e in
// [lo, max_e), lo = lo_msb(vmin) (plus the v <= 0 term when vmin < 1):
//   1: b_e = [v >= 2^e] for e in (lo, max_e) (b_lo = 1 when vmin >= 1; else e from 0; bits
//      opened mod 2) and, for every candidate e, the mantissa t_e = floor(v / 2^(e-M)) mod 2^M
//      (truncate-reduce, no sign extension; local (v << (M-e)) mod 2^M for e <= M);
//   2: y = sum_e onehot_e table_e[t_e] (+ (1 - b_0) table_0[0] when vmin < 1) by ONE selected
//      lookup (mpc::lut_sel: onehot_e = b_e xor b_(e+1) is the selector bit of term e, table_e
//      the 2^M entries of MSB e; the last term is InvPowLut's v <= 0 case, treated as 1:
//      invpow_lookup), or the same lookup times a masked vector (mpc::lut_vec: invpow_times).
// The one-hot selection of the mantissa (formerly a separate M-bit mul round before a
// 14-bit table on (mantissa, e)) moves into the lookup's DPF payload. Candidates below
// lo_msb(vmin) (LayerNorm: eps; exact-max softmax: the maximum's exp(0) = 1) are never the MSB
// and are left out (fixed_point.h lo_msb).
SecureExec::InvIndex SecureExec::invpow_index(const V& v, int vw, int64_t vmin, int max_e, int M, const char* tag,
                                              const std::function<V&(SRound&)>& with_first, V* first_out) {
  const size_t n = v.size();
  const int E = max_e, lo = lo_msb(vmin);
  const bool known_lo = vmin >= 1;  // b_lo = 1: no comparison, no v <= 0 term
  AERO_CHECK(E <= 63 && E > M && E > lo && vw >= std::min(64, E + 1), "invpow: MSB search in [2^", lo, ", 2^", E,
             ") on a ", vw, "-bit wire");
  const V vr = affine(v, 1, 0, vw);
  const int c0 = known_lo ? lo + 1 : 0;  // first compared MSB
  V cmp(n * size_t(E - c0));
  for (int e = c0; e < E; ++e) {
    auto t = affine(vr, 1, -(int64_t(1) << e), vw);
    std::copy(t.begin(), t.end(), cmp.begin() + size_t(e - c0) * n);
  }
  SRound r1(*this, tag);
  V* bp = cmp.empty() ? nullptr : &r1.drelu(cmp, vw, 1);
  std::vector<const V*> tr(E, nullptr);
  for (int e = std::max(lo, M + 1); e < E; ++e) tr[e] = &r1.trunc(vr, {vw, e - M, M, true});
  V* extra = with_first ? &with_first(r1) : nullptr;
  r1.run();
  if (extra) *first_out = *extra;
  const u64 one = dealer() ? 0 : 1;  // a public 1 (mask 0)
  auto b = [&](int e, size_t k) -> u64 {  // [v >= 2^e], masked mod 2
    if (e >= E) return 0;
    if (e < c0) return one;
    return (*bp)[size_t(e - c0) * n + k] & 1;
  };
  InvIndex ix;
  for (int e = lo; e < E; ++e) ix.e.push_back(e);
  if (!known_lo) ix.e.push_back(63);  // slot 63: the v <= 0 case
  ix.man.assign(n * ix.e.size(), 0);
  ix.sel.assign(n * ix.e.size(), 0);
  for (size_t t = 0; t < ix.e.size(); ++t) {
    const int e = ix.e[t];
    for (size_t k = 0; k < n; ++k) {
      const size_t q = t * n + k;
      if (e == 63) {
        ix.sel[q] = (one ^ b(0, k)) & 1;  // 1 - b_0
        continue;
      }
      ix.sel[q] = (b(e, k) ^ b(e + 1, k)) & 1;
      ix.man[q] = e > M ? (*tr[e])[k] : mpc::mod_w(vr[k] << (M - e), M);
    }
  }
  return ix;
}

std::vector<u64> SecureExec::invpow_lookup(const InvIndex& ix, const std::vector<std::vector<int64_t>>& tables,
                                           int out_w, const char* tag) {
  std::vector<const std::vector<int64_t>*> tp;
  for (int e : ix.e) tp.push_back(&tables[e]);
  SRound r2(*this, tag);
  auto& y = r2.lut_sel(ix.man, ix.sel, s_.inv_mantissa, out_w, tp);
  r2.run();
  return y;
}

// Products inside the normalized LUT (FxSpec::lut_products): the second round's lookup times
// the masked vector z (n rows of `width`), mpc::lut_vec: each term's DPF carries the row's
// vector mask (pre-shifted by shift[e] when given) as its payload, so the ONE opening gives
// table_e(t_e) z' instead of table_e(t_e), and no mul round follows.
std::vector<u64> SecureExec::invpow_times(const InvIndex& ix, const std::vector<std::vector<int64_t>>& tables,
                                          const std::vector<int>* shift, const V& z, int z_w, size_t width, int out_w,
                                          int open_shift, const char* tag) {
  mpc::LutVecSpec ls{s_.inv_mantissa, out_w, z_w, ix.e.size(), width, {}, {}, open_shift};
  for (int e : ix.e) {
    if (shift) ls.shift.push_back((*shift)[e]);
    if (d_) continue;  // the dealer needs no tables (the counter: their zero entries, for the work)
    ls.tables.emplace_back(tables[e].size());
    for (size_t j = 0; j < tables[e].size(); ++j) ls.tables.back()[j] = mpc::mod_w(u64(tables[e][j]), out_w);
  }
  SRound r2(*this, tag);
  auto& y = r2.lut_vec(ix.man, ix.sel, z, ls);
  r2.run();
  return y;
}

std::vector<u64> SecureExec::matmul_server(const V& x, size_t M, size_t K, size_t N, const std::vector<int64_t>& w_kn,
                                           int w) {
  return std::move(matmul_server_many({{&x, M, K, N, &w_kn, w}})[0]);
}

// Several server-weight products opened in ONE round (mpc::open_many), each on its own ring.
std::vector<std::vector<u64>> SecureExec::matmul_server_many(const std::vector<WProd>& ps) {
  std::vector<V> out(ps.size());
  std::vector<uint64_t> ids(ps.size());
  for (auto& id : ids) id = tensor_id_++;
  if (counting()) {  // model setup (the masked weights, server to client), then the products
    for (const auto& q : ps)
      c_->send("weights", mpc::kServer, double(mpc::packed_bytes(q.K * q.N, q.w)), double(q.K * q.N));
    TagScope ts(*this, "matmul_w");
    double payload = 0, elems = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& q = ps[i];
      const mpc::MatShape shape{q.M, q.K, q.N};
      c_->keys(tag(), double(mpc::matmul_w_key_bytes(shape, q.w, 0)), double(mpc::matmul_w_key_bytes(shape, q.w, 1)));
      c_->work(tag(), 2.0 * double(q.M) * double(q.K) * double(q.N), 0);
      payload += double(mpc::packed_bytes(q.M * q.N, q.w)), elems += double(q.M * q.N);
      out[i].assign(q.M * q.N, 0);
    }
    c_->exchange(tag(), payload, elems);
    return out;
  }
  if (dealer()) {
    TagScope ts(*this, "matmul_w");
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& q = ps[i];
      out[i] = mpc::matmul_w_deal(*d_, {q.M, q.K, q.N}, *q.x, mpc::weight_mask(seed_, ids[i], q.K * q.N, q.w), q.w);
    }
    return out;
  }
  std::vector<V> w_plain(ps.size()), w_hat(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {  // model setup: the masked weights go to the client once (reusable)
    const auto& q = ps[i];
    mpc::OpScope scope(p_->peer, "weights");
    w_hat[i].resize(q.K * q.N);
    if (p_->id == mpc::kServer) {
      w_plain[i].resize(q.K * q.N);
      for (size_t k = 0; k < q.K * q.N; ++k) w_plain[i][k] = mpc::mod_w(u64((*q.w_kn)[k]), q.w);
      w_hat[i] = mpc::mask_weights(w_plain[i], mpc::weight_mask(seed_, ids[i], q.K * q.N, q.w), q.w);
      p_->peer.send_ring(w_hat[i], q.w);
    } else {
      p_->peer.recv_ring(w_hat[i], q.w);
    }
  }
  mpc::OpScope scope(p_->peer, "matmul_w");
  std::vector<mpc::Opening> ops;
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& q = ps[i];
    ops.push_back({mpc::matmul_w_shares(*p_, {q.M, q.K, q.N}, *q.x, w_hat[i], w_plain[i], q.w), q.w});
  }
  return mpc::open_many(*p_, std::move(ops));
}

// Linear: X' = [X | 1] times W' = [W^T ; round(b 2^2f)] by matmul_w at 40 bits (the bias is a
// weight row), then truncation by f (faithful or stochastic, tspec); outputs that feed the
// residual stream or the attention products are sign-extended to 64 bits by the same
// truncation gate (same round).
// The server sends W'^ = W' + R_W to the client once (tag "weights": model setup).
SWire SecureExec::linear(const SWire& x0, const PiLinear& L, const char* tag) {
  AERO_CHECK(x0.cols == L.in, "secure linear ", tag, ": input width ", x0.cols, " != ", L.in);
  const size_t K = size_t(L.in) + 1, N = size_t(L.out), M = size_t(x0.rows);
  const std::string t = tag;
  // Stochastic fused FFN on a 64-bit input (no LayerNorm before it): the product runs at 64
  // bits and its truncation is deferred to the FFN-scaling residual, which then truncates once
  // for both (see residual): one 64-bit opening instead of 40-bit + 64-bit.
  const bool wide = s_.stochastic_trunc && t == "ffn.fused" && x0.w == WIDE && !x0.pending;
  // Stochastic ffn.fc read by ffn.proj (identity activation, ffn_act_hint) on a 64-bit input:
  // the product on W + f bits, so that the free truncate-reduce leaves exactly the W bits
  // proj multiplies on (at_width): no truncation opening (a 52-bit instead of a 40-bit
  // accumulator opening plus a 40-bit truncation opening).
  const bool fc_lin = s_.stochastic_trunc && t == "ffn.fc" && fc_feeds_linear_ && x0.w == WIDE && !x0.pending;
  // Otherwise the product's ring is 40 bits, or the input's own width when narrower (a
  // LayerNorm output in stochastic mode, 34 bits: the LayerNorm's truncation was free, and this
  // ring needs |x W^T + b| < 2^(ring - 2) at scale 2^2f, i.e. |y| < 2^8; FixedExec reports it
  // as the width of "<tag>.acc").
  // attn.qkv on a 64-bit input (the residual stream of LN-free models) in stochastic mode with
  // the narrow plan (FxSpec::qk_bits <= 52): Q and K's product runs on 64 bits, so they come
  // out of it by the free truncate-reduce to 52 bits; V's product runs on 40 bits in the
  // same round (mpc::open_many) and V's truncation gate runs in the scores' round
  // (attn_logits): one opening of Q, K, V instead of two, one round less (SIGMA's
  // truncate-reduce, PoPETs 2024). With qk_bits > 52 the free shift cannot leave Q and K
  // wide enough, so they take the truncation gate as usual.
  const int QKW = s_.qk_bits;
  const bool late_v = t == "attn.qkv" && s_.stochastic_trunc && x0.w == WIDE && QKW <= WIDE - s_.f;
  const int ring = (wide || late_v) ? WIDE : fc_lin ? W + s_.f : std::min(x0.w, W);
  const V xv = at_width(x0, ring);
  V xp(M * K);
  for (size_t t = 0; t < M; ++t) {
    for (size_t i = 0; i + 1 < K; ++i) xp[t * K + i] = xv[t * L.in + i];
    xp[t * K + K - 1] = dealer() ? 0 : 1;  // public constant 1: mask 0
  }
  std::vector<int64_t> wk;
  if (server()) {
    wk.assign(K * N, 0);
    for (size_t i = 0; i + 1 < K; ++i)
      for (size_t o = 0; o < N; ++o) wk[i * N + o] = encode(L.w[o * L.in + i], s_.f);
    for (size_t o = 0; o < N; ++o) wk[(K - 1) * N + o] = L.b.empty() ? 0 : encode(L.b[o], 2 * s_.f);
  }
  const size_t d3 = N / 3;
  SWire acc{x0.rows, L.out, {}, WIDE};
  V qk, vv;
  if (late_v) {  // [W_Q W_K] on 64 bits, W_V on 40, one round
    std::vector<int64_t> wqk, wv;
    if (server())
      for (size_t i = 0; i < K; ++i) {
        wqk.insert(wqk.end(), wk.begin() + ptrdiff_t(i * N), wk.begin() + ptrdiff_t(i * N + 2 * d3));
        wv.insert(wv.end(), wk.begin() + ptrdiff_t(i * N + 2 * d3), wk.begin() + ptrdiff_t((i + 1) * N));
      }
    V x40(xp.size());
    for (size_t k = 0; k < xp.size(); ++k) x40[k] = mpc::mod_w(xp[k], W);
    auto pr = matmul_server_many({{&xp, M, K, 2 * d3, &wqk, WIDE}, {&x40, M, K, d3, &wv, W}});
    qk = std::move(pr[0]), vv = std::move(pr[1]);
    acc.v.resize(M * N);
  } else {
    acc.v = matmul_server(xp, M, K, N, wk, ring);
  }
  if (t == "ffn.fc" || wide) {  // the consumer fuses the truncation (SWire::pending)
    acc.w = ring;
    acc.pending = s_.f;
    acc.pending_tag = tag;
    return acc;
  }
  if (t != "attn.qkv") {
    acc.v = trunc(acc.v, s_.f, ring, WIDE, tag);
    return acc;
  }
  // attn.qkv: Q and K to FxSpec::qk_bits (60, or 52 narrow), V to 64 (the normalization's product needs
  // V's 64 bits: see attn_softmax_v), both by one truncation round (two gates, one opening).
  for (size_t r = 0; r < M && !late_v; ++r) {
    qk.insert(qk.end(), acc.v.begin() + ptrdiff_t(r * N), acc.v.begin() + ptrdiff_t(r * N + 2 * d3));
    vv.insert(vv.end(), acc.v.begin() + ptrdiff_t(r * N + 2 * d3), acc.v.begin() + ptrdiff_t((r + 1) * N));
  }
  V qk2, vv2;
  if (late_v) {  // free truncate-reduce of Q and K (no gate, no tag); V: the accumulator
    qk2 = dealer() ? mpc::trunc_free_mask(qk, ring, s_.f) : mpc::trunc_free_eval(qk, ring, s_.f);
    for (auto& e : qk2) e = mpc::mod_w(e, QKW);
    vv2 = std::move(vv);
    acc.late_v = std::make_shared<SWire::LateV>();
  } else {
    SRound rt(*this, tag);
    auto& a = rt.trunc(qk, tspec(ring, s_.f, QKW));
    auto& b = rt.trunc(vv, tspec(ring, s_.f, WIDE));
    rt.run();
    qk2 = std::move(a), vv2 = std::move(b);
  }
  for (size_t r = 0; r < M; ++r) {
    std::copy(qk2.begin() + ptrdiff_t(r * 2 * d3), qk2.begin() + ptrdiff_t((r + 1) * 2 * d3), acc.v.begin() + ptrdiff_t(r * N));
    std::copy(vv2.begin() + ptrdiff_t(r * d3), vv2.begin() + ptrdiff_t((r + 1) * d3), acc.v.begin() + ptrdiff_t(r * N + 2 * d3));
  }
  acc.qk_w = QKW;
  return acc;
}

// GELU = relu(x) - D[clamp(x >> 6, -256, 255) + 256] (GeluLut::eval) in 2 rounds:
//   1: relu(x) (faithful only); u = (x >> 6) mod 2^9 (truncate-reduce, no sign extension); lo =
//      [x >= -2^14], hi = [x >= 2^14] as bits mod 2 (the clamp tests on x itself: u >= -256 <=>
//      x >= -256 * 2^6);
//   2: (lo xor hi) D[u + 256] by the selected 9-bit DPF table (D is 0 at both ends, so the
//      clamp is a selection), opened together with the widened relu as relu - delta
//      (stochastic: relu's 40-bit shares from round 1's DCF key, never opened alone).
SWire SecureExec::activation(const SWire& x0, model::Activation act, double slope) {
  const size_t n = x0.v.size();
  SWire y{x0.rows, x0.cols, {}, W};
  // ffn.fc's pending accumulator (SWire::pending) is truncated straight to kActWidth = 28 bits
  // (at_width): stochastic, a free truncate-reduce (fc opens only its accumulator); faithful
  // (ReLU), an exact truncation gate opening 28 bits instead of 40; faithful GELU runs on the
  // accumulator itself, faithful leaky ReLU truncates it to 40 bits. ReLU / stochastic leaky
  // ReLU take the 28-bit wire in ONE gate (mpc::relu_trunc, shift 0: the sign extension to 40
  // bits and leaky's slope truncation live in the comparison's DCF payloads).
  // The activation's wire: kActWidth, or narrower when the pending accumulator's ring leaves
  // fewer bits above the shift (then the truncate-reduce stays free; the ring's own range
  // assumption bounds x).
  const int aw = x0.pending ? std::min(kActWidth, x0.w - x0.pending) : kActWidth;
  switch (act) {
    case model::Activation::identity: return x0;
    case model::Activation::relu: {  // exact (relu_trunc of shift 0 and slope 0)
      const V x = at_width(x0, aw);
      SRound r(*this, "relu");
      auto& o = r.relu_trunc(x, {aw, 0, W});
      r.run();
      y.v = o;
      return y;
    }
    case model::Activation::gelu: {
      // Stochastic (or an already truncated input): on a 28-bit wire (|x| < 2^26, which the
      // 40-bit accumulator of the linear layer before already implies at scale f; ffn.fc's
      // pending accumulator is truncated straight to it for free; 22 bits after a stochastic
      // LayerNorm's 34-bit ring), so every comparison is 27 (21) bits; the ReLU is
      // sign-extended to 40 bits (bounded rule) in the table's round: stochastic inside the DCF
      // payload (mpc::relu_split, below), faithful by a widening truncation of the opened relu.
      // Faithful on ffn.fc's pending accumulator acc (x = floor(acc / 2^p), p = f): the gate
      // runs on acc itself, exactly: [x >= c] = [acc >= c 2^p], floor(x / 2^6) = floor(acc /
      // 2^(p+6)), relu(x) = floor(relu(acc) / 2^p), the last an exact truncation in the
      // table's round (it replaces the widening) - fc's truncation round disappears.
      const bool on_acc = x0.pending && !s_.stochastic_trunc;
      const int gw = on_acc ? x0.w : aw, p = on_acc ? x0.pending : 0;
      const int sh = s_.f - s_.gelu_lut_frac, b = s_.gelu_lut_bits;
      const V xg = on_acc ? x0.v : at_width(x0, gw);
      const int64_t half = int64_t(gelu_.table.size()) / 2, edge = (half << sh) << p;
      // [x >= -edge] = DReLU(x + edge), [x >= edge] = DReLU(x - edge): the ReLU's DCF key
      // evaluated at two more points.
      // Faithful, 2 rounds: {relu, lo xor hi (one bit mod 2), u} | {relu widened (and truncated by p), (lo xor
      // hi) D[u + half] by the selected lookup}: D is 0 at both ends, so the clamp is a
      // selection by lo - hi = lo xor hi (1 inside [-2^14, 2^14), 0 outside; hi implies lo),
      // folded into the table's DPF payload; relu - delta is opened once (SRound::sub_last_two).
      // Stochastic: ReLU's opening removed (mpc::relu_split, ONE key with relu_trunc's payload,
      // dealt and read in round 1): round 1 evaluates the DCF at x^ +- edge only (lo xor hi
      // opened mod 2); round 2 evaluates it at x^ for relu(x)'s 40-bit shares (sign-extended in
      // the payload, exact), which enter the table's opening as relu - delta. Ideas: Boyle et
      // al. EC'21 (ReLU from one DCF, spline payloads); SIGMA (Gupta et al., PoPETs 2024),
      // GELU = ReLU - delta. Faithful (bit-exact, unchanged): relu_cmp opens relu in round 1.
      const bool split = s_.stochastic_trunc;
      const mpc::ReluSplitSpec rs{gw, W, 1, {u64(-edge), u64(edge)}};
      mpc::ReluSplitKey key;
      SRound r1(*this, "gelu");
      const V* rlp = nullptr;
      const V* lohip = nullptr;
      if (split) lohip = &r1.relu_split_cmp(xg, rs, &key);
      else std::tie(rlp, lohip) = r1.relu_cmp(xg, {gw, gw, 1, {u64(-edge), u64(edge)}});
      r1.xor_fold_last(2);  // only sel = lo xor hi is opened (one bit, not two)
      auto& u = r1.trunc(xg, {gw, sh + p, b, true});  // table index: always a floor
      r1.run();
      const V& lohi = *lohip;
      const u64 one = dealer() ? 0 : 1;
      V idx(n), sel(n);
      for (size_t k = 0; k < n; ++k) {
        idx[k] = mpc::mod_w(u[k] + one * u64(half), b);
        sel[k] = lohi[k] & 1;  // lo xor hi (xor_fold_last)
      }
      SRound r2(*this, "gelu");
      if (!split) r2.trunc(*rlp, {gw, p, W, true, true});
      r2.lut_sel(idx, sel, b, W, {&gelu_.table});
      // One 40-bit opening of relu - delta.
      auto& out = split ? r2.relu_split_sub_last(xg, rs, key) : r2.sub_last_two(W);
      r2.run();
      y.v = out;
      return y;
    }
    case model::Activation::leaky_relu:
    case model::Activation::learnable_leaky_relu: {
      const int64_t sl = encode(slope, s_.f);
      if (s_.stochastic_trunc) {  // one round: b x + (1 - b) (floor(sl x / 2^f) + carry)
        const V x = at_width(x0, aw);
        SRound r(*this, "leaky_relu");
        auto& o = r.relu_trunc(x, {aw, 0, W, sl, s_.f, true});
        r.run();
        y.v = o;
        return y;
      }
      // Faithful: the exact floor of the slope product needs its own truncation gate (on a
      // 40-bit x), then the select.
      const V x = at_width(x0, W);
      SRound r1(*this, "leaky_relu");
      auto& b = r1.drelu(x, W, W);
      auto& neg = r1.trunc(affine(x, sl, 0, W), tspec(W, s_.f, W));
      r1.run();
      SRound r2(*this, "leaky_relu");
      V dif(n);
      for (size_t k = 0; k < n; ++k) dif[k] = mpc::mod_w(x[k] - neg[k], W);
      auto& bd = r2.mul(b, dif, W);  // select: neg + b (x - neg)
      r2.run();
      y.v.resize(n);
      for (size_t k = 0; k < n; ++k) y.v[k] = mpc::mod_w(neg[k] + bd[k], W);
      return y;
    }
  }
  return x0;
}

SWire SecureExec::add(const SWire& a, const SWire& b, const char*) {
  const int w = std::min(a.w, b.w);
  SWire y{a.rows, a.cols, at_width(a, w), w};
  const V bv = at_width(b, w);
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = mpc::mod_w(y.v[k] + bv[k], w);
  return y;
}

SWire SecureExec::residual(const SWire& xh, const SWire& f, double beta, double inv_alpha) {
  if (beta == 1.0 && inv_alpha == 1.0) return add(xh, f, "residual");
  const u64 b = u64(encode(beta, s_.f)), a = u64(encode(inv_alpha, s_.f));
  const V xv = at_width(xh, WIDE);
  SWire y{xh.rows, xh.cols, V(xv.size()), WIDE};
  if (f.pending && f.w == WIDE) {  // stochastic fused FFN (see linear): one truncation for both
    // y = floor((xh b 2^p + acc a) / 2^(f + p)) + carry, acc the 64-bit accumulator at scale f + p.
    for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = (xv[k] * b << f.pending) + f.v[k] * a;
    y.v = trunc(y.v, s_.f + f.pending, WIDE, WIDE, "ffn_scaling");
    return y;
  }
  const V fv = at_width(f, WIDE);
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = xv[k] * b + fv[k] * a;
  y.v = trunc(y.v, s_.f, WIDE, WIDE, "ffn_scaling");
  return y;
}

SWire SecureExec::rotary(const SWire& qkv, const PiModel& m) {
  const int d = m.cfg.d_model, H = m.cfg.n_head, dk = d / H, half = m.cfg.rotary_dims() / 2;
  // Q and K (the rotated parts) stay on their own ring (FxSpec::qk_bits from attn.qkv).
  const int qw = qkv.qk_w ? qkv.qk_w : qkv.w;
  SWire y = qkv;
  V lin;
  std::vector<size_t> pos;
  for (int t = 0; t < qkv.rows; ++t)
    for (int part = 0; part < 2; ++part)
      for (int h = 0; h < H; ++h) {
        size_t base = size_t(t) * qkv.cols + size_t(part) * d + size_t(h) * dk;
        for (int i = 0; i < half; ++i) {
          // public cos / sin (count mode: shapes only, any constant does)
          u64 c = counting() ? 1 : u64(encode(m.rot_cos[size_t(t) * half + i], s_.rot_frac));
          u64 sn = counting() ? 0 : u64(encode(m.rot_sin[size_t(t) * half + i], s_.rot_frac));
          u64 x1 = y.v[base + i], x2 = y.v[base + i + half];
          lin.push_back(x1 * c - x2 * sn);
          pos.push_back(base + i);
          lin.push_back(x2 * c + x1 * sn);
          pos.push_back(base + i + half);
        }
      }
  for (auto& e : lin) e = mpc::mod_w(e, qw);
  auto r = trunc(lin, s_.rot_frac, qw, qw, "rotary");
  for (size_t k = 0; k < pos.size(); ++k) y.v[pos[k]] = r[k];
  return y;
}

// z = floor(q.k * round(c[h,i] 2^c_frac) / 2^(f + c_frac)) on the causal entries: one batched
// matmul_ss for all heads (on FxSpec::qk_bits, lower triangle only), the public per-row
// constant (local), one truncation to score_width() bits (no sign extension: free when
// stochastic). Entries above the diagonal stay 0. Width plan: a q-bit ring holds q.k round(c
// 2^20) = z 2^44 for |z| < 2^(q - 45), and (q - 32)-bit logits hold the differences max - z,
// clip_hi - z for |z| < 2^(q - 46): q = 60 (default) |z| < 16384, q = 52 (narrow) |z| < 64
// (FixedExec reports "attn.logits"); each bit below 64 saves 1/8 byte per Q/K element and score.
SWire SecureExec::attn_logits(const SWire& qkv0, const PiBlock& b, int H) {
  const size_t T = qkv0.rows, d = qkv0.cols / 3, dk = d / H, Tc = b.score_const.size() / H;
  // The product's ring is Q's and K's (FxSpec::qk_bits from attn.qkv; narrower inputs are
  // sign-extended to it); the shift by f + c_frac leaves score_width() bits.
  const int qw = qkv0.qk_w ? qkv0.qk_w : qkv0.w;
  const int QKW = s_.qk_bits;
  const V qkv = qw >= QKW ? qkv0.v : at_width(qkv0, QKW);
  const int zr = QKW, zw = score_width();
  V q(H * T * dk), kt(H * dk * T);
  for (int h = 0; h < H; ++h)
    for (size_t t = 0; t < T; ++t)
      for (size_t e = 0; e < dk; ++e) {
        q[(h * T + t) * dk + e] = qkv[t * qkv0.cols + h * dk + e];
        kt[(h * dk + e) * T + t] = qkv[t * qkv0.cols + d + h * dk + e];
      }
  mpc::BatchMatShape sh{{T, dk, T}, size_t(H), false, true};
  SRound r(*this, "attn.scores");
  for (auto& e : q) e = mpc::mod_w(e, zr);
  for (auto& e : kt) e = mpc::mod_w(e, zr);
  auto& sref = r.matmul(sh, q, kt, zr);
  const bool late = qkv0.late_v && !qkv0.late_v->ready;
  V* vt = nullptr;
  if (late) {  // V's truncation from attn.qkv's 64-bit accumulator, in this round
    V va(T * d);
    for (size_t t = 0; t < T; ++t)
      std::copy(qkv0.v.begin() + ptrdiff_t(t * qkv0.cols + 2 * d), qkv0.v.begin() + ptrdiff_t(t * qkv0.cols + 3 * d),
                va.begin() + ptrdiff_t(t * d));
    vt = &r.trunc(va, tspec(W, s_.f, WIDE));  // V's accumulator is on 40 bits (SecureExec::linear)
  }
  r.run();
  if (late) qkv0.late_v->done = std::move(*vt), qkv0.late_v->ready = true;
  V s = std::move(sref);
  size_t k = 0;
  for (int h = 0; h < H && !counting(); ++h)  // public per-row constants (none in count mode)
    for (size_t i = 0; i < T; ++i) {
      u64 c = u64(encode(b.score_const[size_t(h) * Tc + i], s_.c_frac));
      for (size_t j = 0; j <= i; ++j) s[k++] *= c;
    }
  for (auto& e : s) e = mpc::mod_w(e, zr);
  s = trunc(s, s_.f + s_.c_frac, zr, zw, "attn.scores");
  SWire z{int(H * T), int(T), V(size_t(H) * T * T, 0), zw};
  k = 0;
  for (size_t r2 = 0; r2 < size_t(H) * T; ++r2)
    for (size_t j = 0; j <= r2 % T; ++j) z.v[r2 * T + j] = s[k++];
  return z;
}

SWire SecureExec::attn_softmax_v(const SWire& z, const SWire& qkv0, const PiBlock& b, int H) {
  const size_t T = qkv0.rows, d = qkv0.cols / 3, dk = d / H, R = size_t(H) * T;
  const int ZW = z.w;  // score_width(): logits and their differences
  AERO_CHECK(ZW == score_width(), "secure softmax: logits must come from attn_logits");
  auto at = [&](size_t r, size_t j) { return z.v[r * T + j]; };
  // Reference per row: the exact maximum, max(a, b) = b + relu(a - b) (one ReLU round per
  // tournament level), or the public clip_hi.
  V ref(R);
  if (s_.softmax == SoftmaxVariant::exact_max) {
    std::vector<V> cur(R);
    for (size_t r = 0; r < R; ++r)
      for (size_t j = 0; j <= r % T; ++j) cur[r].push_back(at(r, j));
    while (true) {
      V diff, bb;
      for (auto& c : cur)
        for (size_t k = 0; k + 1 < c.size(); k += 2) diff.push_back(mpc::mod_w(c[k] - c[k + 1], ZW)), bb.push_back(c[k + 1]);
      if (diff.empty()) break;
      SRound rr(*this, "softmax.max");
      auto& mx = rr.relu(diff, ZW);
      rr.run();
      size_t q = 0;
      for (auto& c : cur) {
        V next;
        for (size_t k = 0; k + 1 < c.size(); k += 2, ++q) next.push_back(mpc::mod_w(bb[q] + mx[q], ZW));
        if (c.size() % 2) next.push_back(c.back());
        c = std::move(next);
      }
    }
    for (size_t r = 0; r < R; ++r) ref[r] = cur[r][0];
  } else {
    for (int h = 0; h < H; ++h) {  // the head's public clip constant (PiBlock::clip_hi)
      AERO_CHECK(!s_.exp_one_round() || s_.clip_in_range(b.clip_hi(h, s_.clip_hi)), "one-round exp: clip constant ",
                 b.clip_hi(h, s_.clip_hi), " outside the logits' range");
      const V c = constant(T, encode(b.clip_hi(h, s_.clip_hi), s_.f), ZW);
      std::copy(c.begin(), c.end(), ref.begin() + ptrdiff_t(size_t(h) * T));
    }
  }
  V dd;
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j <= r % T; ++j) dd.push_back(mpc::mod_w(ref[r] - at(r, j), ZW));
  const V e = exp_lookup(dd);
  // E (causal, public zeros above the diagonal), row sums, 1/sum; E V for all heads in one
  // batched product, opened in the reciprocal's first round.
  V E(R * T, 0), sum(R, 0);
  size_t q = 0;
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j <= r % T; ++j) {
      E[r * T + j] = e[q];
      sum[r] += e[q++];
    }
  AERO_CHECK(!qkv0.late_v || qkv0.late_v->ready, "secure softmax: V's truncation runs in attn_logits");
  const bool late = qkv0.late_v != nullptr;
  const V& qkv = late ? qkv0.late_v->done : qkv0.v;  // V columns at 64 bits
  const size_t vc = late ? d : qkv0.cols, v0 = late ? 0 : 2 * d;
  AERO_CHECK(qkv0.w == WIDE, "secure softmax: V must be a 64-bit wire");
  V vh(size_t(H) * T * dk);
  for (int h = 0; h < H; ++h)
    for (size_t t = 0; t < T; ++t)
      for (size_t cc = 0; cc < dk; ++cc) vh[(h * T + t) * dk + cc] = qkv[t * vc + v0 + h * dk + cc];
  // sum <= T 2^exp_frac: the MSB search stops there, on a width just above it; with the exact
  // max, sum >= 2^exp_frac (the maximum's exp(0) = 1), so the search starts there.
  int sum_bits = s_.exp_frac() + 1;
  while ((size_t(1) << (sum_bits - s_.exp_frac() - 1)) < T) ++sum_bits;
  const int max_e = std::min(63, sum_bits), sw = std::min(64, max_e + 1);
  const int64_t vmin = s_.softmax == SoftmaxVariant::exact_max ? int64_t(1) << s_.exp_frac() : 0;
  V ev;
  const InvIndex ix = invpow_index(sum, sw, vmin, max_e, s_.inv_mantissa, "softmax.recip", [&](SRound& rr) -> V& {
    return rr.matmul(mpc::BatchMatShape{{T, T, dk}, size_t(H), true, false}, E, vh, WIDE);
  }, &ev);
  auto to_rows = [&](const V& p) {  // [(h T + t) dk + c] -> [t, h dk + c]
    V o(T * d);
    for (int h = 0; h < H; ++h)
      for (size_t t = 0; t < T; ++t)
        for (size_t cc = 0; cc < dk; ++cc) o[t * d + h * dk + cc] = p[(h * T + t) * dk + cc];
    return o;
  };
  if (s_.products_in_lookups()) {
    // The normalization inside the 1/sum lookup (mpc::lut_vec, E V's mask in the payload):
    // faithful, (E V)(1/sum) on 64 bits, then the exact truncation to 40 bits (3 rounds
    // instead of 4); stochastic, InvFold's pre-shifted product at scale f + kGuard, truncated
    // by the lookup's local share truncation to 40 bits (2 rounds: no opening after it).
    if (!s_.stochastic_trunc) {
      auto p = invpow_times(ix, inv_tabs_, nullptr, ev, WIDE, dk, WIDE, 0, "softmax.recip");
      return SWire{int(T), int(d), trunc(to_rows(p), s_.exp_frac() + s_.inv_frac(), WIDE, W, "softmax.normalize"), W};
    }
    auto p = invpow_times(ix, inv_fold_.table, &inv_fold_.shift, ev, WIDE, dk, WIDE, InvFold::kGuard, "softmax.recip");
    AERO_CHECK(WIDE - InvFold::kGuard == W, "secure softmax: the folded normalization must leave ", W, " bits");
    return SWire{int(T), int(d), to_rows(p), W};
  }
  const V inv = invpow_lookup(ix, inv_tabs_, WIDE, "softmax.recip");
  // (E V) x (1/sum), then the truncation to 40 bits (sign extension in the same gate).
  V invb(size_t(H) * T * dk);
  for (size_t r = 0; r < size_t(H) * T; ++r)
    for (size_t cc = 0; cc < dk; ++cc) invb[r * dk + cc] = inv[r];
  SRound rn(*this, "softmax.normalize");
  auto& p = rn.mul(ev, invb, WIDE);
  rn.run();
  return SWire{int(T), int(d), trunc(to_rows(p), s_.exp_frac() + s_.inv_frac(), WIDE, W, "softmax.normalize"), W};
}

// Exp of the logit differences dd = ref - z (ZW = score_width() bits, masked) as 64-bit
// values at scale exp_frac, FixedExec::attn_softmax_v's e:
//   two rounds: the index clamp(dd >> (f - 6), 0, last):
//     1: u = (dd >> 6) mod 2^eb (a floor); hi = [dd >= last 2^6]; (clipped) lo = [dd >= 0]
//        (bits mod 2);
//     2: the selected lookup (mpc::lut_sel): E[last] = 0, so the upper clamp is the selection
//        (1 - hi) E[u]; the clipped variant's lower clamp gives E[0]: e = (lo xor hi) E[u] +
//        (1 xor lo) E[0] (hi implies lo), two terms of one lookup.
//   one round (FxSpec::exp_one_round(), stochastic): the index u is the FREE truncate-reduce
//     of dd by f - 6 (floor + carry, ZW - 6 = exp_index_bits() bits: no opening), and one
//     lookup of ExpLut::one_round over u's whole domain: the upper clamp is in the table (0
//     from exp's underflow on), which is nonzero on its first ~750 / 1100 entries only, so the
//     DPF (early termination, kExpLeafBits) is evaluated on that window (mpc::lut_support).
//     Clipped: + E[0] [u < 0] = E[0] - E[0] DReLU(u), the DReLU's shares scaled by E[0] and
//     subtracted from the lookup's before their ONE opening (SRound::scale_last, sub_last_two;
//     the lookup's fresh mask hides the sum), E[0] added to the opened value.
//     Exact max: dd = max - z takes the tournament's last opening (the masked maximum) as it
//     is, so the lookup directly follows the last tournament level.
// Sources: SIGMA (PoPETs 2024) for the truncate-reduce before a DPF lookup, Orca (S&P 2024)
// for the stochastic truncation, Boyle et al. (EC'21) for the selected / clamped lookups.
std::vector<u64> SecureExec::exp_lookup(const V& dd) {
  const int ZW = score_width(), sh = s_.f - s_.exp_lut_frac;
  if (s_.exp_one_round()) {
    const int nb = s_.exp_index_bits();
    const V u = trunc(dd, sh, ZW, nb, "softmax.exp");  // free (stochastic, narrowing)
    SRound r(*this, "softmax.exp");
    auto& e = r.lut(u, exp_lut_);
    if (s_.softmax != SoftmaxVariant::clipped) {
      r.run();
      return e;
    }
    const int64_t e0 = exp_.one_round[0];
    r.drelu(u, nb, WIDE);
    r.scale_last(u64(e0), WIDE);
    auto& d = r.sub_last_two(WIDE);  // T[u] - E[0] [u >= 0]
    r.run();
    return affine(d, 1, e0, WIDE);
  }
  const int64_t last = int64_t(exp_.table.size()) - 1;
  const int eb = s_.exp_bits();
  const bool clip = s_.softmax == SoftmaxVariant::clipped;
  const size_t n = dd.size();
  V cmpin = affine(dd, 1, -(last << sh), ZW);
  if (clip) cmpin.insert(cmpin.end(), dd.begin(), dd.end());
  SRound r1(*this, "softmax.exp");
  auto& u = r1.trunc(dd, {ZW, sh, eb, true});  // table index: always a floor
  auto& hl = r1.drelu(cmpin, ZW, 1);
  r1.run();
  const u64 pub = dealer() ? 0 : 1;
  V idx = u, sel(n);
  for (size_t k = 0; k < n; ++k) sel[k] = clip ? (hl[n + k] ^ hl[k]) & 1 : (pub ^ hl[k]) & 1;
  std::vector<const std::vector<int64_t>*> tabs{&exp_.table};
  std::vector<int64_t> e0tab;
  if (clip) {
    e0tab.assign(exp_.table.size(), exp_.table[0]);
    tabs.push_back(&e0tab);
    idx.insert(idx.end(), u.begin(), u.end());
    for (size_t k = 0; k < n; ++k) sel.push_back((pub ^ hl[n + k]) & 1);
  }
  SRound r2(*this, "softmax.exp");
  auto& e = r2.lut_sel(idx, sel, eb, WIDE, tabs);
  r2.run();
  return e;
}

// LayerNorm (FixedExec::layernorm): D = d sum x^2 - (sum x)^2 + eps' by quad_rows (one opened
// value per row, 64 bits), r = Rsqrt(D) (normalized LUT, 2 rounds, MSB candidates from
// lo_msb(eps') up: D >= eps'), (d x - sum x) r by mul, truncation to 40 bits: 5 rounds (4
// stochastic). With FxSpec::lut_products the product runs inside the rsqrt lookup (mpc::lut_vec
// with the row's masked d x - sum x as the payload vector): 4 rounds faithful, 3 stochastic
// (the lookup's local share truncation gives the 34-bit output).
SWire SecureExec::layernorm(const SWire& x, const PiNorm& nrm, const char* tag) {
  const size_t R = x.rows, d = x.cols;
  const V x64 = at_width(x, WIDE);
  V D;
  if (dealer() || counting()) {
    TagScope outer(*this, tag), inner(*this, "quad_rows");  // party mode: OpScope(tag), then quad_rows_eval's
    if (dealer()) {
      D = mpc::quad_rows_deal(*d_, R, d, u64(d), 1, x64, WIDE);
    } else {
      c_->keys(this->tag(), double(mpc::quad_rows_key_bytes(R, d, WIDE, 0)), double(mpc::quad_rows_key_bytes(R, d, WIDE, 1)));
      c_->exchange(this->tag(), double(mpc::packed_bytes(R, WIDE)), double(R));
      D.assign(R, 0);
    }
  } else {
    mpc::OpScope scope(p_->peer, tag);
    D = mpc::quad_rows_eval(*p_, R, d, u64(d), 1, x64, WIDE);
  }
  const int64_t eps = encode(double(d) * d * s_.ln_eps, 2 * s_.f);
  D = affine(D, 1, eps, WIDE);
  const InvIndex ix = invpow_index(D, WIDE, eps, 63, s_.inv_mantissa, tag);
  V sx(R, 0), c(R * d);
  for (size_t t = 0; t < R; ++t)
    for (size_t i = 0; i < d; ++i) sx[t] += x64[t * d + i];
  for (size_t t = 0; t < R; ++t)
    for (size_t i = 0; i < d; ++i) c[t * d + i] = u64(d) * x64[t * d + i] - sx[t];
  // Folded models (PiModel::fold_norms, the default) have no gain or bias here: they live in
  // the next linear's secret weights. An unfolded model's gain/bias are public constants.
  const bool aff = nrm.affine();
  // Width plan of the product (d x - sx) r = x_hat 2^(f + rsqrt_out_frac) (folded models):
  //   faithful: on ln_product_width(d) bits (|x_hat| <= sqrt(d - 1), so 49 bits at d = 768
  //     instead of 64), then the faithful truncation to 40 bits (bounded sign extension);
  //   stochastic: on 64 bits, then the FREE truncate-reduce by rsqrt_out_frac (SIGMA's
  //     truncate-reduce, PoPETs 2024; Orca's stochastic truncation, S&P 2024): the output is
  //     a 34-bit wire (no opening, one round less) that the next linear multiplies on its own
  //     34-bit ring (SecureExec::linear; range assumption |y| < 2^8 there, docs); the
  //     faithful gate's bounded sign extension is SIRNN's known-MSB rule (S&P 2021).
  // Unfolded models (public gain at scale f) keep 64 bits and the truncation to 40.
  const int mw = aff || s_.stochastic_trunc ? WIDE : ln_product_width(int(d));
  const int out_w = !aff && s_.stochastic_trunc ? WIDE - s_.rsqrt_out_frac : W;
  for (auto& e : c) e = mpc::mod_w(e, mw);
  V cr;
  if (s_.products_in_lookups()) {  // (d x - sx) r inside the rsqrt lookup: no mul round
    const int os = !aff && s_.stochastic_trunc ? s_.rsqrt_out_frac : 0;  // stochastic: truncated there too
    cr = invpow_times(ix, rsqrt_tabs_, nullptr, c, mw, d, mw, os, tag);
    if (os) return SWire{int(R), int(d), cr, out_w};
  } else {
    const V r = invpow_lookup(ix, rsqrt_tabs_, WIDE, tag);
    V rb(R * d);
    for (size_t t = 0; t < R; ++t)
      for (size_t i = 0; i < d; ++i) rb[t * d + i] = mpc::mod_w(r[t], mw);
    SRound rm(*this, tag);
    auto& crr = rm.mul(c, rb, mw);
    rm.run();
    cr = std::move(crr);
  }
  if (aff && !counting())  // public gain (unfolded models only)
    for (size_t t = 0; t < R; ++t)
      for (size_t i = 0; i < d; ++i) cr[t * d + i] *= u64(encode(nrm.g[i], s_.f));
  auto y = trunc(cr, (aff ? s_.f : 0) + s_.rsqrt_out_frac, mw, out_w, tag);
  if (aff && p_)  // public bias (parties only; unfolded models only)
    for (size_t t = 0; t < R; ++t)
      for (size_t i = 0; i < d; ++i) y[t * d + i] = mpc::mod_w(y[t * d + i] + u64(encode(nrm.b[i], s_.f)), W);
  return SWire{int(R), int(d), y, out_w};
}

// Ring of LayerNorm's faithful product (d x - sx) r: |d x_i - sx| <= sqrt((d - 1) D) and
// r <= 2^(f + rsqrt_out_frac) / sqrt(D) (1 + 2^-9 + one ulp), so |x_hat| 2^(f + rsqrt_out_frac)
// < 2^(f + rsqrt_out_frac) sqrt(d - 1) 1.01, plus the bounded rule's two spare bits.
int SecureExec::ln_product_width(int d) const {
  int b = 0;
  while (std::ldexp(1.0, b) <= std::sqrt(double(std::max(d - 1, 1))) * 1.01) ++b;
  return std::min(WIDE, s_.f + s_.rsqrt_out_frac + b + 2);
}

// Embedding: the client inputs its one-hot rows (T x V, 40 bits), a matmul_w with the table
// at scale f (no truncation), plus the server's positions table input as a masked wire; then
// sign-extended to the 64-bit residual stream (one round).
SWire SecureExec::embed(const std::vector<int32_t>& ids, const PiModel& m) {
  const size_t T = ids.size(), Vv = m.cfg.vocab_size, d = m.cfg.d_model;
  V oh;
  if (client()) {
    oh.assign(T * Vv, 0);
    for (size_t t = 0; t < T; ++t) oh[t * Vv + size_t(ids[t])] = 1;
  }
  auto x1 = input(mpc::kClient, oh, T * Vv, W);
  std::vector<int64_t> wk;
  if (server()) {
    wk.resize(Vv * d);
    for (size_t k = 0; k < Vv * d; ++k) wk[k] = encode(m.wte[k], s_.f);
  }
  SWire x{int(T), int(d), matmul_server(x1, T, Vv, d, wk, W), W};
  if (m.cfg.has_positions()) {
    V pe;
    if (server()) {
      pe.assign(T * d, 0);
      for (size_t k = 0; k < T * d; ++k) pe[k] = mpc::mod_w(u64(encode(m.wpe[k], s_.f)), W);
    }
    auto pw = input(mpc::kServer, pe, T * d, W);
    for (size_t k = 0; k < T * d; ++k) x.v[k] = mpc::mod_w(x.v[k] + pw[k], W);
  }
  return SWire{x.rows, x.cols, at_width(x, WIDE), WIDE};
}

SWire SecureExec::last_row(const SWire& x) {
  return SWire{1, x.cols, V(x.v.end() - x.cols, x.v.end()), x.w};
}

SWire SecureExec::lm_head(const SWire& x, const PiModel& m) {
  const size_t Vv = m.cfg.vocab_size, d = m.cfg.d_model;
  // Folded final norm: the head is the server's diag(g) W^T with the bias row beta W^T,
  // multiplied as X' = [X | 1] (as linear); the bias row is secret like the weights.
  const bool hb = !m.lm_head_bias.empty();
  const size_t K = d + (hb ? 1 : 0), M = size_t(x.rows);
  std::vector<int64_t> wk;
  if (server()) {
    const auto& w = m.head_weight();
    wk.resize(K * Vv);
    for (size_t v = 0; v < Vv; ++v)
      for (size_t i = 0; i < d; ++i) wk[i * Vv + v] = encode(w[v * d + i], s_.f);
    if (hb)
      for (size_t v = 0; v < Vv; ++v) wk[d * Vv + v] = encode(m.lm_head_bias[v], 2 * s_.f);
  }
  V xv = at_width(x, W);
  if (hb) {
    V xp(M * K);
    for (size_t t = 0; t < M; ++t) {
      for (size_t i = 0; i < d; ++i) xp[t * K + i] = xv[t * d + i];
      xp[t * K + d] = dealer() ? 0 : 1;  // public constant 1: mask 0
    }
    xv = std::move(xp);
  }
  SWire y{x.rows, int(Vv), matmul_server(xv, M, K, Vv, wk, W), W};
  y.v = trunc(y.v, s_.f, W, W, "lm_head");
  return y;
}

// Secure argmax of a 1 x V row (first maximum on ties, like argmax_rows): a tournament whose
// level k computes max(a, b) = b + relu(a - b) and the bit [a >= b] from one DCF key
// (relu_cmp), while the index selection of level k - 1 (idx_b + bit (idx_a - idx_b), one mul)
// runs in the same round: ceil(log2 V) + 1 rounds instead of 2 per level.
SWire SecureExec::argmax(const SWire& lg) {
  AERO_CHECK(lg.rows == 1, "secure argmax: one row expected, got ", lg.rows);
  const int w = lg.w;
  V val = lg.v, idx(val.size());
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = dealer() ? 0 : u64(k);  // public indices
  bool pending = false;  // the previous level's index selection
  V p_bit, p_a, p_b;
  bool p_odd = false;
  u64 p_last = 0;
  while (val.size() > 1 || pending) {
    const size_t pairs = val.size() / 2;
    V diff(pairs), dab(p_a.size());
    for (size_t k = 0; k < pairs; ++k) diff[k] = mpc::mod_w(val[2 * k] - val[2 * k + 1], w);
    for (size_t k = 0; k < dab.size(); ++k) dab[k] = mpc::mod_w(p_a[k] - p_b[k], w);
    SRound r(*this, "argmax");
    std::pair<V*, V*> mc{nullptr, nullptr};
    if (pairs) mc = r.relu_cmp(diff, {w, w, w, {0}});
    V* sel = pending ? &r.mul(p_bit, dab, w) : nullptr;
    r.run();
    if (pending) {  // indices aligned with this level's values
      V ni(p_bit.size());
      for (size_t k = 0; k < ni.size(); ++k) ni[k] = mpc::mod_w(p_b[k] + (*sel)[k], w);
      if (p_odd) ni.push_back(p_last);
      idx = std::move(ni);
      pending = false;
    }
    if (pairs) {
      V nv(pairs);
      p_a.assign(pairs, 0);
      p_b.assign(pairs, 0);
      for (size_t k = 0; k < pairs; ++k) {
        nv[k] = mpc::mod_w(val[2 * k + 1] + (*mc.first)[k], w);
        p_a[k] = idx[2 * k], p_b[k] = idx[2 * k + 1];
      }
      p_bit = *mc.second;
      p_odd = val.size() % 2;
      p_last = idx.back();
      if (p_odd) nv.push_back(val.back());
      val = std::move(nv);
      pending = true;
    } else {
      p_a.clear(), p_b.clear();
    }
  }
  return SWire{1, 1, idx, w};
}

}  // namespace aero::pi
