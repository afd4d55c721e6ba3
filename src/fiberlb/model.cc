// fiberlb state model (placeholder until the core lands).
namespace photon::fiberlb {}
