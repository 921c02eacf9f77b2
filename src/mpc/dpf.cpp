#include "mpc/dpf.h"

#include "mpc/fss_tree.h"

namespace aero::mpc {

using namespace fss;

void DpfParams::check() const {
  check_width(in_bits, "DPF input");
  check_width(out_bits, "DPF output");
}

namespace {
void alloc(DpfKeys& k, const DpfParams& p, size_t n) {
  k.p = p;
  k.n = n;
  k.seed.resize(n);
  k.scw.resize(n * p.in_bits);
  k.tcw.resize(n * p.in_bits);
  k.fcw.resize(n);
  k.fcw2.resize(p.dual ? n : 0);
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
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const u64 a = mod_w(alpha[i], nb);
    Block s[2] = {clear_lsb(seed0[i]), clear_lsb(seed1[i])};
    int t[2] = {0, 1};
    k0.seed[i] = s[0];
    k1.seed[i] = s[1];
    for (int j = 0; j < nb; ++j) {
      const int ab = int(bit_at(a, nb, j));
      Block in[4] = {tweak(s[0], kLeft), tweak(s[0], kRight), tweak(s[1], kLeft),
                     tweak(s[1], kRight)};
      Block out[4];
      fixed_key_hash(in, out, 4);
      const int keep = ab, lose = 1 - ab;
      const Block scw = clear_lsb(out[lose]) ^ clear_lsb(out[2 + lose]);
      const int tl = lsb(out[0]) ^ lsb(out[2]) ^ ab ^ 1;
      const int tr = lsb(out[1]) ^ lsb(out[3]) ^ ab;
      k0.scw[i * nb + j] = k1.scw[i * nb + j] = scw;
      k0.tcw[i * nb + j] = k1.tcw[i * nb + j] = u64(tl | (tr << 1));
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
    Block in[2] = {tweak(s[0], kConvert), tweak(s[1], kConvert)}, cv[2];
    fixed_key_hash(in, cv, 2);
    const u64 sign = t[1] ? u64(-1) : 1;
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
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    Block s = k.seed[i];
    int t = party;
    const u64 xi = mod_w(x[i], nb);
    for (int j = 0; j < nb; ++j) {
      const u64 b = bit_at(xi, nb, j);
      Block in = tweak(s, b), h;
      fixed_key_hash(&in, &h, 1);
      Block ns = clear_lsb(h);
      int nt = lsb(h);
      if (t) {
        ns ^= k.scw[i * nb + j];
        nt ^= int((k.tcw[i * nb + j] >> b) & 1);
      }
      s = ns;
      t = nt;
    }
    Block in = tweak(s, kConvert), cv;
    fixed_key_hash(&in, &cv, 1);
    out[i] = (sign * (cv.lo + (t ? k.fcw[i] : 0))) & om;
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
  for (int j = 0; j < nb; ++j) {
    const size_t width = size_t(1) << j;
    const Block scw = k.scw[i * nb + j];
    const int tl = int(k.tcw[i * nb + j] & 1), tr = int((k.tcw[i * nb + j] >> 1) & 1);
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
  for (size_t q = 0; q < dom; ++q) s[q] = tweak(s[q], kConvert);
  // Convert(s) = H(s ^ 4), low 64 bits; hashed in chunks through the scratch buffer.
  const u64 om = ring_mask(k.p.out_bits), sign = party ? u64(-1) : 1, f = k.fcw[i];
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

size_t dpf_key_bytes(const DpfParams& p, size_t n, int party) {
  const size_t lv = n * size_t(p.in_bits);
  return 8 + lv * 16 + packed_bytes(lv, 2) + packed_bytes(n, p.out_bits) * (p.dual ? 2 : 1) + (party ? n * 16 : 0);
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
