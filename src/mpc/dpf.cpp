#include "mpc/dpf.h"

#include <algorithm>
#include <cmath>

#include "mpc/fss_tree.h"

namespace aero::mpc {

using namespace fss;

void DpfParams::check() const {
  check_width(in_bits, "DPF input");
  check_width(out_bits, "DPF output");
  AERO_CHECK(leaf_bits >= 0 && leaf_bits <= 3 && leaf_bits <= in_bits, "DPF early termination by ", leaf_bits,
             " levels: expected 0..min(3, in_bits = ", in_bits, ")");
  AERO_CHECK(leaf_bits == 0 || !dual, "DPF early termination is not supported with two payloads");
}

namespace {
int tree_levels(const DpfParams& p) { return p.in_bits - p.leaf_bits; }
size_t leaf_width(const DpfParams& p) { return size_t(1) << p.leaf_bits; }

void alloc(DpfKeys& k, const DpfParams& p, size_t n) {
  k.p = p;
  k.n = n;
  k.seed.resize(n);
  k.scw.resize(n * tree_levels(p));
  k.tcw.resize(n * tree_levels(p));
  k.fcw.resize(n * leaf_width(p));
  k.fcw2.resize(p.dual ? n : 0);
}

// Leaf conversion of a seed into 2^L group elements (before reduction mod 2^out):
// element k is half k % 2 of H(s ^ (kConvert + k / 2)); L = 0 is Convert(s).lo as before.
void leaf_convert(Block s, int L, u64* out) {
  const size_t m = size_t(1) << L, nb = (m + 1) / 2;
  Block in[4], h[4];
  for (size_t b = 0; b < nb; ++b) in[b] = tweak(s, kConvert + b);
  fixed_key_hash(in, h, nb);
  for (size_t k = 0; k < m; ++k) out[k] = elem(h[k / 2], int(k % 2));
}
// The key path of one DPF (BGI16 fig. 1): the correction words of the first lv of the nb
// levels along alpha (scw[j], tcw[j]; lv = nb for a full tree, fewer with early termination)
// from the root seeds, and the two parties' final seeds and party 1's final control bit.
struct PathEnd {
  Block s0, s1;
  int t1;
};
PathEnd dpf_path(int nb, int lv, u64 a, Block seed0, Block seed1, Block* scw_out, u64* tcw_out) {
  Block s[2] = {clear_lsb(seed0), clear_lsb(seed1)};
  int t[2] = {0, 1};
  for (int j = 0; j < lv; ++j) {
    const int ab = int(bit_at(a, nb, j));
    Block in[4] = {tweak(s[0], kLeft), tweak(s[0], kRight), tweak(s[1], kLeft), tweak(s[1], kRight)};
    Block out[4];
    fixed_key_hash(in, out, 4);
    const int keep = ab, lose = 1 - ab;
    const Block scw = clear_lsb(out[lose]) ^ clear_lsb(out[2 + lose]);
    const int tl = lsb(out[0]) ^ lsb(out[2]) ^ ab ^ 1;
    const int tr = lsb(out[1]) ^ lsb(out[3]) ^ ab;
    scw_out[j] = scw;
    tcw_out[j] = u64(tl | (tr << 1));
    const int tkeep = keep ? tr : tl;
    for (int b = 0; b < 2; ++b) {
      Block ns = clear_lsb(out[2 * b + keep]);
      int nt = lsb(out[2 * b + keep]);
      if (t[b]) {
        ns ^= scw;
        nt ^= tkeep;
      }
      s[b] = ns;
      t[b] = nt;
    }
  }
  return {s[0], s[1], t[1]};
}
}  // namespace

void dpf_keygen(const DpfParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                std::span<const Block> seed0, std::span<const Block> seed1, DpfKeys& k0,
                DpfKeys& k1, std::span<const u64> beta2) {
  p.check();
  const size_t n = alpha.size();
  const int nb = p.in_bits;
  AERO_CHECK(beta.size() == n && seed0.size() == n && seed1.size() == n && (!p.dual || beta2.size() == n),
             "dpf_keygen: ", n, " alphas need as many betas and seeds");
  alloc(k0, p, n);
  alloc(k1, p, n);
  const int lv = tree_levels(p), L = p.leaf_bits;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const u64 a = mod_w(alpha[i], nb);
    k0.seed[i] = clear_lsb(seed0[i]);
    k1.seed[i] = clear_lsb(seed1[i]);
    const PathEnd e = dpf_path(nb, lv, a, seed0[i], seed1[i], &k0.scw[i * lv], &k0.tcw[i * lv]);
    std::copy(&k0.scw[i * lv], &k0.scw[i * lv] + lv, &k1.scw[i * lv]);
    std::copy(&k0.tcw[i * lv], &k0.tcw[i * lv] + lv, &k1.tcw[i * lv]);
    const Block s[2] = {e.s0, e.s1};
    const u64 sign = e.t1 ? u64(-1) : 1;
    if (L > 0) {  // early termination: a correction vector, beta at alpha's low L bits
      const size_t m = leaf_width(p), lo = a & (m - 1);
      u64 c0[8], c1[8];
      leaf_convert(s[0], L, c0);
      leaf_convert(s[1], L, c1);
      for (size_t k = 0; k < m; ++k)
        k0.fcw[i * m + k] = k1.fcw[i * m + k] =
            (sign * ((k == lo ? beta[i] : 0) - c0[k] + c1[k])) & ring_mask(p.out_bits);
      continue;
    }
    Block in[2] = {tweak(s[0], kConvert), tweak(s[1], kConvert)}, cv[2];
    fixed_key_hash(in, cv, 2);
    k0.fcw[i] = k1.fcw[i] = (sign * (beta[i] - cv[0].lo + cv[1].lo)) & ring_mask(p.out_bits);
    if (p.dual) k0.fcw2[i] = k1.fcw2[i] = (sign * (beta2[i] - cv[0].hi + cv[1].hi)) & ring_mask(p.out_bits);
  }
}

void dpf_eval(int party, const DpfKeys& k, std::span<const u64> x, std::span<u64> out) {
  const size_t n = k.n;
  const int nb = k.p.in_bits;
  AERO_CHECK(x.size() == n && out.size() == n, "dpf_eval: ", n, " keys need ", n,
             " inputs and outputs");
  const u64 om = ring_mask(k.p.out_bits), sign = party ? u64(-1) : 1;
  const int lv = tree_levels(k.p), L = k.p.leaf_bits;
  const size_t m = leaf_width(k.p);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    Block s = k.seed[i];
    int t = party;
    const u64 xi = mod_w(x[i], nb);
    for (int j = 0; j < lv; ++j) {
      const u64 b = bit_at(xi, nb, j);
      Block in = tweak(s, b), h;
      fixed_key_hash(&in, &h, 1);
      Block ns = clear_lsb(h);
      int nt = lsb(h);
      if (t) {
        ns ^= k.scw[i * lv + j];
        nt ^= int((k.tcw[i * lv + j] >> b) & 1);
      }
      s = ns;
      t = nt;
    }
    u64 cv[8];
    leaf_convert(s, L, cv);
    const size_t lo = xi & (m - 1);
    out[i] = (sign * (cv[lo] + (t ? k.fcw[i * m + lo] : 0))) & om;
  }
}

namespace {
// Breadth-first expansion in place of the subtree whose root (seed s[0], control bit t[0]) sits
// at level `from` of a key with correction words scw/tcw (per level): afterwards s and t hold
// its 2^(nb - from) leaves in order. Level j's 2^(j - from) nodes q have children 2q and
// 2q + 1, written from the back so parents are read before being overwritten. `in` and `h`
// are scratch of equal even size.
struct Scratch {
  std::vector<Block> s, in, h;  // node seeds (then leaves), hash input and output
  std::vector<uint8_t> t;       // node control bits
};
// Per-thread scratch for a subtree of `leaves` leaves whose root has seed `seed` and control
// bit `t0`, reused across calls (a lookup evaluates keys per element).
Scratch& scratch(size_t leaves, Block seed, int t0) {
  thread_local Scratch sc;
  sc.s.resize(leaves);
  sc.t.resize(leaves);
  sc.in.resize(2 * std::min<size_t>(leaves, 512));
  sc.h.resize(sc.in.size());
  sc.s[0] = seed;
  sc.t[0] = uint8_t(t0);
  return sc;
}

void expand(const Block* scw_l, const u64* tcw_l, int from, int nb, std::vector<Block>& s, std::vector<uint8_t>& t,
            std::vector<Block>& in, std::vector<Block>& h) {
  for (int j = from; j < nb; ++j) {
    const size_t width = size_t(1) << (j - from);
    const Block scw = scw_l[j];
    const int tl = int(tcw_l[j] & 1), tr = int((tcw_l[j] >> 1) & 1);
    const size_t B = in.size() / 2;
    for (size_t end = width; end > 0;) {
      const size_t beg = end > B ? end - B : 0;
      for (size_t q = beg; q < end; ++q) {
        in[2 * (q - beg)] = tweak(s[q], kLeft);
        in[2 * (q - beg) + 1] = tweak(s[q], kRight);
      }
      fixed_key_hash(in.data(), h.data(), 2 * (end - beg));
      for (size_t q = end; q-- > beg;) {
        // Branch-free correction: cm is all ones when the parent's control bit is set.
        const u64 cm = u64(0) - u64(t[q]);
        const Block c{scw.lo & cm, scw.hi & cm};
        const Block hl = h[2 * (q - beg)], hr = h[2 * (q - beg) + 1];
        s[2 * q] = clear_lsb(hl) ^ c;
        s[2 * q + 1] = clear_lsb(hr) ^ c;
        t[2 * q] = uint8_t(lsb(hl) ^ (tl & int(cm)));
        t[2 * q + 1] = uint8_t(lsb(hr) ^ (tr & int(cm)));
      }
      end = beg;
    }
  }
}
}  // namespace

void dpf_eval_all(int party, const DpfKeys& k, size_t i, std::span<u64> out, std::span<u64> out2) {
  const int nb = k.p.in_bits;
  AERO_CHECK(nb <= 24, "full-domain DPF evaluation supports inputs up to 24 bits, got ", nb);
  const size_t dom = size_t(1) << nb;
  AERO_CHECK(out.size() == dom && (!k.p.dual || out2.size() == dom), "dpf_eval_all: output must hold 2^", nb,
             " entries");
  Scratch& sc = scratch(dom, k.seed[i], party);
  auto &s = sc.s, &in = sc.in, &h = sc.h;
  auto& t = sc.t;
  const int lv = tree_levels(k.p);
  expand(&k.scw[i * lv], &k.tcw[i * lv], 0, lv, s, t, in, h);
  const u64 om = ring_mask(k.p.out_bits), sign = party ? u64(-1) : 1;
  if (k.p.leaf_bits > 0) {  // early termination: 2^(n-L) leaves, 2^L outputs each
    const int L = k.p.leaf_bits;
    const size_t leaves = dom >> L, m = leaf_width(k.p), nbk = (m + 1) / 2;
    const u64* f = &k.fcw[i * m];
    const size_t per = in.size() / nbk;  // leaves per hash batch
    for (size_t q0 = 0; q0 < leaves; q0 += per) {
      const size_t cnt = std::min(per, leaves - q0);
      for (size_t q = 0; q < cnt; ++q)
        for (size_t b = 0; b < nbk; ++b) in[q * nbk + b] = tweak(s[q0 + q], kConvert + b);
      fixed_key_hash(in.data(), h.data(), cnt * nbk);
      for (size_t q = 0; q < cnt; ++q) {
        const u64 cm = u64(0) - u64(t[q0 + q]);
        u64* o = &out[(q0 + q) << L];
        for (size_t e = 0; e < m; ++e) o[e] = (sign * (elem(h[q * nbk + e / 2], int(e % 2)) + (f[e] & cm))) & om;
      }
    }
    return;
  }
  for (size_t q = 0; q < dom; ++q) s[q] = tweak(s[q], kConvert);
  // Convert(s) = H(s ^ 4), low 64 bits; hashed in chunks through the scratch buffer.
  const u64 f = k.fcw[i];
  for (size_t q0 = 0; q0 < dom; q0 += h.size()) {
    const size_t cnt = std::min(h.size(), dom - q0);
    fixed_key_hash(s.data() + q0, h.data(), cnt);
    for (size_t q = 0; q < cnt; ++q)
      out[q0 + q] = (sign * (h[q].lo + (f & (u64(0) - u64(t[q0 + q]))))) & om;
    if (k.p.dual) {
      const u64 f2 = k.fcw2[i];
      for (size_t q = 0; q < cnt; ++q)
        out2[q0 + q] = (sign * (h[q].hi + (f2 & (u64(0) - u64(t[q0 + q]))))) & om;
    }
  }
}

namespace {
// dpf_eval_range on [a, b) (no wrap): level by level, only the nodes whose subtree meets the
// interval (a contiguous run of node indices per level); out[x - a] for x in [a, b).
void eval_interval(int party, const DpfKeys& k, size_t i, size_t a, size_t b, u64* out) {
  const int nb = k.p.in_bits, lv = tree_levels(k.p), L = k.p.leaf_bits;
  const size_t m = leaf_width(k.p), nbk = (m + 1) / 2;
  thread_local std::vector<Block> s, ns, in, h;
  thread_local std::vector<uint8_t> t, nt;
  s.assign(1, k.seed[i]);
  t.assign(1, uint8_t(party));
  size_t q0 = 0;  // node index of s[0] at the current level
  for (int j = 0; j < lv; ++j) {
    const int sh = nb - j - 1;
    const size_t nlo = a >> sh, nhi = (b - 1) >> sh, cnt = s.size();
    in.resize(2 * cnt);
    h.resize(2 * cnt);
    for (size_t r = 0; r < cnt; ++r) in[2 * r] = tweak(s[r], kLeft), in[2 * r + 1] = tweak(s[r], kRight);
    fixed_key_hash(in.data(), h.data(), 2 * cnt);
    const Block scw = k.scw[i * lv + j];
    const int tl = int(k.tcw[i * lv + j] & 1), tr = int((k.tcw[i * lv + j] >> 1) & 1);
    ns.resize(nhi - nlo + 1);
    nt.resize(ns.size());
    for (size_t c = nlo; c <= nhi; ++c) {
      const size_t r = (c >> 1) - q0, hc = c - 2 * q0;
      const u64 cm = u64(0) - u64(t[r]);
      ns[c - nlo] = clear_lsb(h[hc]) ^ Block{scw.lo & cm, scw.hi & cm};
      nt[c - nlo] = uint8_t(lsb(h[hc]) ^ ((c & 1 ? tr : tl) & int(cm)));
    }
    std::swap(s, ns);
    std::swap(t, nt);
    q0 = nlo;
  }
  const size_t cnt = s.size();
  in.resize(cnt * nbk);
  h.resize(in.size());
  for (size_t q = 0; q < cnt; ++q)
    for (size_t bk = 0; bk < nbk; ++bk) in[q * nbk + bk] = tweak(s[q], kConvert + bk);
  fixed_key_hash(in.data(), h.data(), in.size());
  const u64 om = ring_mask(k.p.out_bits), sign = party ? u64(-1) : 1;
  const u64* f = &k.fcw[i * m];
  for (size_t q = 0; q < cnt; ++q) {
    const u64 cm = u64(0) - u64(t[q]);
    const size_t x0 = (q0 + q) << L;
    for (size_t e = 0; e < m; ++e) {
      const size_t x = x0 + e;
      if (x < a || x >= b) continue;
      out[x - a] = (sign * (elem(h[q * nbk + e / 2], int(e % 2)) + (f[e] & cm))) & om;
    }
  }
}
}  // namespace

void dpf_eval_range(int party, const DpfKeys& k, size_t i, u64 lo, std::span<u64> out) {
  const int nb = k.p.in_bits;
  AERO_CHECK(nb <= 24 && !k.p.dual, "dpf_eval_range: one payload and up to 24 input bits");
  const size_t dom = size_t(1) << nb, len = out.size();
  AERO_CHECK(len >= 1 && len <= dom, "dpf_eval_range: ", len, " points in a domain of 2^", nb);
  lo &= dom - 1;
  const size_t first = std::min(len, dom - lo);
  eval_interval(party, k, i, lo, lo + first, out.data());
  if (first < len) eval_interval(party, k, i, 0, len - first, out.data() + first);
}

double dpf_eval_range_aes(const DpfParams& p, size_t len) {
  const int lv = tree_levels(p);
  double aes = 0;
  for (int j = 0; j < lv; ++j)  // nodes expanded at level j (2 AES each)
    aes += 2.0 * std::min(std::ldexp(1.0, j), double(len) / std::ldexp(1.0, p.in_bits - j) + 1.0);
  const double leaves = std::min(std::ldexp(1.0, lv), double(len) / double(leaf_width(p)) + 1.0);
  return aes + leaves * double((leaf_width(p) + 1) / 2);
}

size_t dpf_key_bytes(const DpfParams& p, size_t n, int party) {
  const size_t lv = n * size_t(tree_levels(p));
  return 8 + lv * 16 + packed_bytes(lv, 2) + packed_bytes(n * leaf_width(p), p.out_bits) * (p.dual ? 2 : 1) +
         (party ? n * 16 : 0);
}

double dpf_eval_all_aes(const DpfParams& p) {
  const double leaves = std::ldexp(1.0, tree_levels(p));
  return 2.0 * (leaves - 1.0) + leaves * double((leaf_width(p) + 1) / 2);
}

namespace {
// The tree part of a batch of keys (per-level seed and control-bit corrections; the root seeds
// come first, by private_seeds), written by the dealer and read back by a party.
void put_tree(Dealer& d, const std::vector<Block>& scw, const std::vector<u64>& tcw) {
  d.put_both({reinterpret_cast<const uint8_t*>(scw.data()), scw.size() * 16});
  d.put_both(pack_bits(tcw, 2));
}
void read_tree(KeyReader& r, std::vector<Block>& seed, std::vector<Block>& scw, std::vector<u64>& tcw) {
  r.private_seeds(seed);
  for (auto& s : seed) s = fss::clear_lsb(s);
  r.get_bytes({reinterpret_cast<uint8_t*>(scw.data()), scw.size() * 16});
  r.get_ring(tcw, 2);
}
}  // namespace

void dpf_deal(Dealer& d, const DpfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta, std::span<const u64> beta2) {
  p.check();
  const size_t n = alpha.size();
  d.begin("dpf", n);
  std::vector<Block> s0(n), s1(n);
  d.private_seeds(s0, s1);
  DpfKeys k0, k1;
  dpf_keygen(p, alpha, beta, s0, s1, k0, k1, beta2);
  put_tree(d, k0.scw, k0.tcw);
  auto fb = pack_bits(k0.fcw, p.out_bits);
  d.put_both(fb);
  if (p.dual) d.put_both(pack_bits(k0.fcw2, p.out_bits));
}

DpfKeys dpf_read(KeyReader& r, const DpfParams& p, size_t n) {
  p.check();
  r.begin("dpf", n);
  DpfKeys k;
  alloc(k, p, n);
  read_tree(r, k.seed, k.scw, k.tcw);
  r.get_ring(k.fcw, p.out_bits);
  if (p.dual) r.get_ring(k.fcw2, p.out_bits);
  return k;
}

// ---- vector payload ----

void DpfVecParams::check() const {
  check_width(in_bits, "vector DPF input");
  check_width(out_bits, "vector DPF output");
  AERO_CHECK(in_bits <= 24, "vector DPF: inputs up to 24 bits, got ", in_bits);
  AERO_CHECK(narrow == 0 || (narrow_bits >= 1 && narrow_bits <= 16), "vector DPF: narrow words of ", narrow_bits,
             " bits (1..16)");
}

namespace {
// The leaf conversion of seeds s[0..cnt): blocks() AES outputs per leaf, leaf q's at
// out[q * blocks() ...]: wide word c is 64-bit half c, narrow word c the 16-bit slice c after
// the wide halves' blocks (vec_word / vec_narrow read them).
void vec_convert(const DpfVecParams& p, const Block* s, size_t cnt, std::vector<Block>& in, std::vector<Block>& out) {
  const size_t nb = p.blocks();
  in.resize(cnt * nb);
  out.resize(cnt * nb);
  for (size_t q = 0; q < cnt; ++q)
    for (size_t b = 0; b < nb; ++b) in[q * nb + b] = Block{s[q].lo ^ kConvert, s[q].hi ^ u64(b)};
  fixed_key_hash(in.data(), out.data(), in.size());
}
inline const u64* vec_words(const DpfVecParams&, const Block* leaf) { return reinterpret_cast<const u64*>(leaf); }
inline const uint16_t* vec_narrow(const DpfVecParams& p, const Block* leaf) {
  return reinterpret_cast<const uint16_t*>(leaf + (p.wide + 1) / 2);
}
}  // namespace

void dpf_vec_deal(Dealer& d, const DpfVecParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                  std::span<const u64> beta_n) {
  p.check();
  const size_t n = alpha.size(), nb = size_t(p.in_bits);
  AERO_CHECK(beta.size() == n * p.wide && beta_n.size() == n * p.narrow, "dpf_vec_deal: ", n, " keys need ",
             n * p.wide, " + ", n * p.narrow, " payload words, got ", beta.size(), " + ", beta_n.size());
  d.begin("dpf_vec", n);
  std::vector<Block> s0(n), s1(n), scw(n * nb);
  std::vector<u64> tcw(n * nb), cw(n * p.wide), cwn(n * p.narrow);
  d.private_seeds(s0, s1);
  const u64 om = ring_mask(p.out_bits), nm = ring_mask(p.narrow_bits);
#pragma omp parallel
  {
    std::vector<Block> in, out;
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      const PathEnd e = dpf_path(p.in_bits, p.in_bits, mod_w(alpha[i], p.in_bits), s0[i], s1[i], &scw[i * nb], &tcw[i * nb]);
      const Block ends[2] = {e.s0, e.s1};
      vec_convert(p, ends, 2, in, out);
      const Block* l0 = out.data();
      const Block* l1 = out.data() + p.blocks();
      const u64 sign = e.t1 ? u64(-1) : 1;
      for (size_t c = 0; c < p.wide; ++c)
        cw[i * p.wide + c] = (sign * (beta[i * p.wide + c] - vec_words(p, l0)[c] + vec_words(p, l1)[c])) & om;
      for (size_t c = 0; c < p.narrow; ++c)
        cwn[i * p.narrow + c] =
            (sign * (beta_n[i * p.narrow + c] - vec_narrow(p, l0)[c] + vec_narrow(p, l1)[c])) & nm;
    }
  }
  put_tree(d, scw, tcw);
  d.put_both(pack_bits(cw, p.out_bits));
  if (p.narrow) d.put_both(pack_bits(cwn, p.narrow_bits));
}

DpfVecKeys dpf_vec_read(KeyReader& r, const DpfVecParams& p, size_t n) {
  p.check();
  r.begin("dpf_vec", n);
  DpfVecKeys k;
  k.p = p;
  k.n = n;
  k.seed.resize(n);
  k.scw.resize(n * p.in_bits);
  k.tcw.resize(n * p.in_bits);
  k.cw.resize(n * p.wide);
  k.cwn.resize(n * p.narrow);
  read_tree(r, k.seed, k.scw, k.tcw);
  r.get_ring(k.cw, p.out_bits);
  if (p.narrow) r.get_ring(k.cwn, p.narrow_bits);
  return k;
}

size_t dpf_vec_key_bytes(const DpfVecParams& p, size_t n, int party) {
  const size_t lv = n * size_t(p.in_bits);
  return 8 + lv * 16 + packed_bytes(lv, 2) + packed_bytes(n * p.wide, p.out_bits) +
         (p.narrow ? packed_bytes(n * p.narrow, p.narrow_bits) : 0) + (party ? n * 16 : 0);
}

void dpf_vec_inner(int party, const DpfVecKeys& k, size_t i, int first, std::span<const u64> w,
                   std::span<u64> out_wide, std::span<u64> out_narrow) {
  const DpfVecParams& p = k.p;
  const int nb = p.in_bits, from = first < 0 ? 0 : 1;
  AERO_CHECK(first < 2 && nb >= from, "dpf_vec_inner: first input bit ", first, " of a ", nb, "-bit key");
  const size_t leaves = size_t(1) << (nb - from);
  AERO_CHECK(w.size() == leaves && out_wide.size() == p.wide && out_narrow.size() == p.narrow,
             "dpf_vec_inner: ", leaves, " weights and ", p.wide, " + ", p.narrow, " outputs expected");
  Scratch& sc = scratch(leaves, k.seed[i], party);
  auto& s = sc.s;
  auto& t = sc.t;
  thread_local std::vector<Block> cin, cout;
  thread_local std::vector<u64> aw;
  thread_local std::vector<uint16_t> an;
  if (from) {  // only the child `first` of the root
    Block x = tweak(s[0], u64(first)), y;
    fixed_key_hash(&x, &y, 1);
    const u64 cm = u64(0) - u64(t[0]);
    const Block scw = k.scw[i * nb];
    s[0] = clear_lsb(y) ^ Block{scw.lo & cm, scw.hi & cm};
    t[0] = uint8_t(lsb(y) ^ (int((k.tcw[i * nb] >> first) & 1) & int(cm)));
  }
  expand(&k.scw[i * nb], &k.tcw[i * nb], from, nb, s, t, sc.in, sc.h);
  aw.assign(p.wide, 0);
  an.assign(p.narrow, 0);
  u64 tw = 0;  // sum of the weights of the leaves whose control bit is set
  const size_t nbk = p.blocks(), batch = std::max<size_t>(1, 512 / nbk);
  thread_local std::vector<Block> live;
  thread_local std::vector<u64> lw;
  for (size_t q0 = 0; q0 < leaves; q0 += batch) {
    live.clear();
    lw.clear();
    for (size_t q = q0; q < std::min(leaves, q0 + batch); ++q)
      if (w[q]) {
        live.push_back(s[q]);
        lw.push_back(w[q]);
        tw += w[q] * t[q];
      }
    if (live.empty()) continue;
    vec_convert(p, live.data(), live.size(), cin, cout);
    // The inner products (the evaluation's bulk with the conversions): 64-bit multiply-adds
    // for the wide words, 16-bit ones for the narrow words (they are used mod 2^16 at most).
    const size_t nw = p.wide, nn = p.narrow;
    u64* __restrict a = aw.data();
    uint16_t* __restrict an16 = an.data();
    for (size_t l = 0; l < live.size(); ++l) {
      const Block* leaf = cout.data() + l * nbk;
      const u64 wq = lw[l];
      const u64* __restrict wv = vec_words(p, leaf);
#pragma omp simd
      for (size_t c = 0; c < nw; ++c) a[c] += wq * wv[c];
      const uint16_t w16 = uint16_t(wq);
      const uint16_t* __restrict nv = vec_narrow(p, leaf);
#pragma omp simd
      for (size_t c = 0; c < nn; ++c) an16[c] = uint16_t(an16[c] + w16 * nv[c]);
    }
  }
  const u64 sign = party ? u64(-1) : 1, om = ring_mask(p.out_bits), nm = ring_mask(p.narrow_bits);
  for (size_t c = 0; c < p.wide; ++c) out_wide[c] = (sign * (aw[c] + tw * k.cw[i * p.wide + c])) & om;
  for (size_t c = 0; c < p.narrow; ++c) out_narrow[c] = (sign * (u64(an[c]) + tw * k.cwn[i * p.narrow + c])) & nm;
}

}  // namespace aero::mpc
