#include "mpc/dcf.h"

#include "mpc/fss_tree.h"

namespace aero::mpc {

using namespace fss;

void DcfParams::check() const {
  check_width(in_bits, "DCF input");
  check_width(out_bits, "DCF output");
  AERO_CHECK(payload >= 1 && payload <= 3, "DCF payload must be 1 to 3 elements, got ", payload);
  AERO_CHECK(payload < 3 || out_bits <= 42, "a 3-element DCF payload needs out_bits <= 42 (one value block)");
}

namespace {
void alloc(DcfKeys& k, const DcfParams& p, size_t n) {
  k.p = p;
  k.n = n;
  k.seed.resize(n);
  k.scw.resize(n * p.in_bits);
  k.tcw.resize(n * p.in_bits);
  k.vcw.resize(n * p.in_bits * p.payload);
  k.fcw.resize(n * p.payload);
}
}  // namespace

namespace {
// Writes party 0's keys into k0 (its seeds and the correction words both parties share);
// party 1's keys are the same with seed1 (cleared) as root seeds.
void keygen_shared(const DcfParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                   std::span<const Block> seed0, std::span<const Block> seed1, DcfKeys& k0) {
  p.check();
  const size_t n = alpha.size();
  const int nb = p.in_bits, m = p.payload, ob = p.out_bits;
  const u64 om = ring_mask(p.out_bits);
  AERO_CHECK(beta.size() == n * m && seed0.size() == n && seed1.size() == n,
             "dcf_keygen: ", n, " alphas need ", n * m, " betas and ", n, " seeds per party");
  alloc(k0, p, n);
  // L instances in lockstep: one hash call of 8 L blocks per level feeds the VAES pipeline.
  constexpr size_t L = 4;
  const size_t chunks = (n + L - 1) / L;
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; ++c) {
    const size_t i0 = c * L, cnt = std::min(L, n - i0);
    Block s[L][2];
    int t[L][2];
    u64 va[L][3] = {};
    for (size_t l = 0; l < cnt; ++l) {
      s[l][0] = clear_lsb(seed0[i0 + l]);
      s[l][1] = clear_lsb(seed1[i0 + l]);
      t[l][0] = 0;
      t[l][1] = 1;
      k0.seed[i0 + l] = s[l][0];
    }
    Block in[8 * L], hs[8 * L];
    for (int j = 0; j < nb; ++j) {
      for (size_t l = 0; l < cnt; ++l)
        for (int b = 0; b < 2; ++b)
          for (int q = 0; q < 4; ++q) in[8 * l + 4 * b + q] = tweak(s[l][b], u64(q));
      fixed_key_hash(in, hs, 8 * cnt);
      for (size_t l = 0; l < cnt; ++l) {
        const size_t i = i0 + l;
        const Block* out = hs + 8 * l;
        const int ab = int(bit_at(mod_w(alpha[i], nb), nb, j));
        // out[4b + 0/1]: left/right child (seed|t); out[4b + 2/3]: left/right value block.
        const int keep = ab, lose = 1 - ab;
        const Block scw = clear_lsb(out[lose]) ^ clear_lsb(out[4 + lose]);
        const int tl = lsb(out[0]) ^ lsb(out[4]) ^ ab ^ 1;
        const int tr = lsb(out[1]) ^ lsb(out[5]) ^ ab;
        const u64 sign = t[l][1] ? u64(-1) : 1;
        for (int k = 0; k < m; ++k) {
          const u64 v0l = elem(out[2 + lose], k, m, ob), v1l = elem(out[6 + lose], k, m, ob);
          const u64 v0k = elem(out[2 + keep], k, m, ob), v1k = elem(out[6 + keep], k, m, ob);
          u64 vcw = sign * (v1l - v0l - va[l][k]);
          if (lose == 0) vcw += sign * beta[i * m + k];
          va[l][k] = va[l][k] - v1k + v0k + sign * vcw;
          k0.vcw[(i * nb + j) * m + k] = vcw & om;
        }
        k0.scw[i * nb + j] = scw;
        k0.tcw[i * nb + j] = u64(tl | (tr << 1));
        const int tkeep = keep ? tr : tl;
        for (int b = 0; b < 2; ++b) {
          Block ns = clear_lsb(out[4 * b + keep]);
          int nt = lsb(out[4 * b + keep]);
          if (t[l][b]) {
            ns ^= scw;
            nt ^= tkeep;
          }
          s[l][b] = ns;
          t[l][b] = nt;
        }
      }
    }
    for (size_t l = 0; l < cnt; ++l) {
      in[2 * l] = tweak(s[l][0], kConvert);
      in[2 * l + 1] = tweak(s[l][1], kConvert);
    }
    fixed_key_hash(in, hs, 2 * cnt);
    for (size_t l = 0; l < cnt; ++l) {
      const u64 sign = t[l][1] ? u64(-1) : 1;
      for (int k = 0; k < m; ++k)
        k0.fcw[(i0 + l) * m + k] =
            (sign * (elem(hs[2 * l + 1], k, m, ob) - elem(hs[2 * l], k, m, ob) - va[l][k])) & om;
    }
  }
}

}  // namespace

void dcf_keygen(const DcfParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                std::span<const Block> seed0, std::span<const Block> seed1, DcfKeys& k0,
                DcfKeys& k1) {
  keygen_shared(p, alpha, beta, seed0, seed1, k0);
  k1 = k0;
  for (size_t i = 0; i < k1.n; ++i) k1.seed[i] = clear_lsb(seed1[i]);
}

void dcf_eval(int party, const DcfKeys& k, std::span<const u64> x, std::span<u64> out) {
  const size_t n = k.n;
  const int nb = k.p.in_bits, m = k.p.payload, ob = k.p.out_bits;
  const u64 om = ring_mask(k.p.out_bits);
  AERO_CHECK(x.size() == n && out.size() == n * m, "dcf_eval: ", n, " keys need ", n,
             " inputs and ", n * m, " outputs, got ", x.size(), " and ", out.size());
  constexpr size_t L = 16;  // instances in lockstep: 32 blocks per AES call fill the VAES pipeline
  const size_t chunks = (n + L - 1) / L;
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; ++c) {
    const size_t i0 = c * L, cnt = std::min(L, n - i0);
    Block s[L];
    int t[L];
    u64 v[L][3] = {};
    u64 xi[L];
    for (size_t l = 0; l < cnt; ++l) {
      s[l] = k.seed[i0 + l];
      t[l] = party;
      xi[l] = mod_w(x[i0 + l], nb);
    }
    Block in[2 * L], hs[2 * L];
    for (int j = 0; j < nb; ++j) {
      for (size_t l = 0; l < cnt; ++l) {
        const u64 b = bit_at(xi[l], nb, j);
        in[2 * l] = tweak(s[l], b);
        in[2 * l + 1] = tweak(s[l], kValueLeft + b);
      }
      fixed_key_hash(in, hs, 2 * cnt);
      for (size_t l = 0; l < cnt; ++l) {
        const size_t i = i0 + l;
        const u64 b = bit_at(xi[l], nb, j);
        // Branch-free correction (the control bit is unpredictable): cm = all ones iff t.
        const u64 cm = u64(0) - u64(t[l]);
        const Block scw = k.scw[i * nb + j];
        s[l] = clear_lsb(hs[2 * l]) ^ Block{scw.lo & cm, scw.hi & cm};
        for (int q = 0; q < m; ++q)
          v[l][q] += elem(hs[2 * l + 1], q, m, ob) + (k.vcw[(i * nb + j) * m + q] & cm);
        t[l] = lsb(hs[2 * l]) ^ (int((k.tcw[i * nb + j] >> b) & 1) & t[l]);
      }
    }
    for (size_t l = 0; l < cnt; ++l) in[l] = tweak(s[l], kConvert);
    fixed_key_hash(in, hs, cnt);
    const u64 sign = party ? u64(-1) : 1;
    for (size_t l = 0; l < cnt; ++l)
      for (int q = 0; q < m; ++q) {
        u64 r = v[l][q] + elem(hs[l], q, m, ob) + (t[l] ? k.fcw[(i0 + l) * m + q] : 0);
        out[(i0 + l) * m + q] = (sign * r) & om;
      }
  }
}

size_t dcf_key_bytes(const DcfParams& p, size_t n, int party) {
  const size_t lv = n * size_t(p.in_bits);
  return 8 + lv * 16 + packed_bytes(lv, 2) + packed_bytes(lv * p.payload, p.out_bits) +
         packed_bytes(n * p.payload, p.out_bits) + (party ? n * 16 : 0);
}

void dcf_deal(Dealer& d, const DcfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta) {
  p.check();
  const size_t n = alpha.size();
  d.begin("dcf", n);
  std::vector<Block> s0(n), s1(n);
  d.private_seeds(s0, s1);
  DcfKeys k0;
  keygen_shared(p, alpha, beta, s0, s1, k0);
  for (int q = 0; q < 2; ++q) d.key(q).bytes().reserve(d.key(q).bytes().size() + dcf_key_bytes(p, n, q));
  d.put_both({reinterpret_cast<const uint8_t*>(k0.scw.data()), k0.scw.size() * 16});
  auto tb = pack_bits(k0.tcw, 2);
  d.put_both(tb);
  auto vb = pack_bits(k0.vcw, p.out_bits);
  d.put_both(vb);
  auto fb = pack_bits(k0.fcw, p.out_bits);
  d.put_both(fb);
}

DcfKeys dcf_read(KeyReader& r, const DcfParams& p, size_t n) {
  p.check();
  r.begin("dcf", n);
  DcfKeys k;
  alloc(k, p, n);
  r.private_seeds(k.seed);
  for (auto& s : k.seed) s = fss::clear_lsb(s);
  r.get_bytes({reinterpret_cast<uint8_t*>(k.scw.data()), k.scw.size() * 16});
  r.get_ring(k.tcw, 2);
  r.get_ring(k.vcw, p.out_bits);
  r.get_ring(k.fcw, p.out_bits);
  return k;
}

}  // namespace aero::mpc
