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
    Block s[2] = {clear_lsb(seed0[i]), clear_lsb(seed1[i])};
    int t[2] = {0, 1};
    k0.seed[i] = s[0];
    k1.seed[i] = s[1];
    for (int j = 0; j < lv; ++j) {
      const int ab = int(bit_at(a, nb, j));
      Block in[4] = {tweak(s[0], kLeft), tweak(s[0], kRight), tweak(s[1], kLeft),
                     tweak(s[1], kRight)};
      Block out[4];
      fixed_key_hash(in, out, 4);
      const int keep = ab, lose = 1 - ab;
      const Block scw = clear_lsb(out[lose]) ^ clear_lsb(out[2 + lose]);
      const int tl = lsb(out[0]) ^ lsb(out[2]) ^ ab ^ 1;
      const int tr = lsb(out[1]) ^ lsb(out[3]) ^ ab;
      k0.scw[i * lv + j] = k1.scw[i * lv + j] = scw;
      k0.tcw[i * lv + j] = k1.tcw[i * lv + j] = u64(tl | (tr << 1));
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
    const u64 sign = t[1] ? u64(-1) : 1;
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

void dpf_eval_all(int party, const DpfKeys& k, size_t i, std::span<u64> out, std::span<u64> out2) {
  const int nb = k.p.in_bits;
  AERO_CHECK(nb <= 24, "full-domain DPF evaluation supports inputs up to 24 bits, got ", nb);
  const size_t dom = size_t(1) << nb;
  AERO_CHECK(out.size() == dom && (!k.p.dual || out2.size() == dom), "dpf_eval_all: output must hold 2^", nb,
             " entries");
  // Breadth-first expansion in place: level j holds 2^j (seed, t) pairs; children of node q
  // are 2q and 2q+1, written from the back so parents are read before being overwritten.
  // Per-thread scratch, reused across calls (a LUT evaluates one key per element).
  thread_local std::vector<Block> s, in, h;
  thread_local std::vector<uint8_t> t;
  s.resize(dom);
  t.resize(dom);
  in.resize(2 * std::min<size_t>(dom, 512));
  h.resize(in.size());
  s[0] = k.seed[i];
  t[0] = uint8_t(party);
  const int lv = tree_levels(k.p);
  for (int j = 0; j < lv; ++j) {
    const size_t width = size_t(1) << j;
    const Block scw = k.scw[i * lv + j];
    const int tl = int(k.tcw[i * lv + j] & 1), tr = int((k.tcw[i * lv + j] >> 1) & 1);
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

void dpf_deal(Dealer& d, const DpfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta, std::span<const u64> beta2) {
  p.check();
  const size_t n = alpha.size();
  d.begin("dpf", n);
  std::vector<Block> s0(n), s1(n);
  d.private_seeds(s0, s1);
  DpfKeys k0, k1;
  dpf_keygen(p, alpha, beta, s0, s1, k0, k1, beta2);
  d.put_both({reinterpret_cast<const uint8_t*>(k0.scw.data()), k0.scw.size() * 16});
  auto tb = pack_bits(k0.tcw, 2);
  d.put_both(tb);
  auto fb = pack_bits(k0.fcw, p.out_bits);
  d.put_both(fb);
  if (p.dual) d.put_both(pack_bits(k0.fcw2, p.out_bits));
}

DpfKeys dpf_read(KeyReader& r, const DpfParams& p, size_t n) {
  p.check();
  r.begin("dpf", n);
  DpfKeys k;
  alloc(k, p, n);
  r.private_seeds(k.seed);
  for (auto& s : k.seed) s = fss::clear_lsb(s);
  r.get_bytes({reinterpret_cast<uint8_t*>(k.scw.data()), k.scw.size() * 16});
  r.get_ring(k.tcw, 2);
  r.get_ring(k.fcw, p.out_bits);
  if (p.dual) r.get_ring(k.fcw2, p.out_bits);
  return k;
}

}  // namespace aero::mpc
