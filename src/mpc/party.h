// A party's view of a two-party run, and the one communication step every protocol ends with.
//
// Masked wires. Every secret value x of width w travels as the public masked value
// x^ = x + r (mod 2^w), known to both parties, where the mask r is known only to the dealer.
// A protocol therefore has two sides with the same shape:
//   dealer side:  <op>_deal(Dealer&, spec, input masks...)        -> output masks
//   party side:   <op>_eval(Party&,  spec, masked inputs...)      -> masked outputs
// The dealer side writes this gate's keys (in evaluation order) and chooses the output mask;
// the party side reads the keys, computes additive shares of (output + output mask) locally
// and opens them with `open` (one round; w bits per element in each direction).
// Linear maps on masked wires (add, subtract, multiply by a public integer, add a public
// constant) are local: the parties apply them to x^ and the dealer to r (a public constant
// changes x^ only). See docs/mpc.md.
#pragma once
#include <span>
#include <vector>

#include "mpc/keys.h"
#include "mpc/transport.h"

namespace aero::mpc {

enum Role : int { kServer = 0, kClient = 1 };

struct Party {
  int id = 0;         // 0 = server (weights), 1 = client (prompt)
  Channel& peer;      // online channel to the other party
  KeyReader& keys;    // this party's correlated randomness
};

// Opens additive shares: both parties send their share (w bits per element), receive the
// other's and return the sum mod 2^w. One round.
std::vector<u64> open(Party& p, std::span<const u64> share, int w);

// Several openings of independent gates (each its own width) in ONE message each way, so
// they cost one round together: the gates' `*_shares` halves compute the shares, this opens
// them all (what "run independent operators in the same round" means on the wire).
struct Opening {
  std::vector<u64> share;
  int w = 64;
};
std::vector<std::vector<u64>> open_many(Party& p, std::vector<Opening> parts);

// Input sharing: the owner of a private tensor x turns it into a masked wire. The dealer
// gives the owner the mask r in the clear (its key stream) and the other party nothing; the
// owner sends x + r. Dealer side returns r; owner gets x^ and the other party receives it.
std::vector<u64> input_deal(Dealer& d, int owner, size_t n, int w);
std::vector<u64> input_eval(Party& p, int owner, std::span<const u64> x, size_t n, int w);

// Output: reveals a masked wire to `receiver` only (the dealer hands it the mask).
void output_deal(Dealer& d, int receiver, std::span<const u64> r, int w);
// Exact key bytes of input_deal / output_deal for `party` (marker; the mask for the owner /
// receiver).
inline size_t input_key_bytes(size_t n, int w, int owner, int party) {
  return 8 + (party == owner ? packed_bytes(n, w) : 0);
}
inline size_t output_key_bytes(size_t n, int w, int receiver, int party) {
  return 8 + (party == receiver ? packed_bytes(n, w) : 0);
}
// Returns the plaintext at `receiver`, an empty vector at the other party.
std::vector<u64> output_eval(Party& p, int receiver, std::span<const u64> x_hat, int w);

}  // namespace aero::mpc
