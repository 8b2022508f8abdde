// ThreadTuner (threads.h): the thread count of a program's runs, chosen from measured step times.
#include "threads.h"

#include <algorithm>

namespace fastnn {
namespace {

constexpr double kWindow = 0.02;       // seconds of exploited steps per segment
constexpr double kProbeWindow = 0.005; // seconds per probe segment (3 on either count)
constexpr int kProbeSegments = 6;
constexpr double kMinGap = 0.05;       // seconds exploited before the first probe after a switch
constexpr double kMaxGap = 4.0;        // ... and at most, once the current count keeps winning
constexpr double kCostShare = 50;      // probes cost at most 1/50 of the time exploited
constexpr double kDegradedShare = 0.2;  // ... 1/10 once the current count has become slower
constexpr double kSwitch = 0.97;       // another count must be 3% faster to be taken
constexpr double kDegraded = 1.3;      // a segment this much slower than at the choice: probe
constexpr double kHopeless = 2.5;      // one count this much slower ends a probe at once
constexpr size_t kMaxEntries = 16;     // batch sizes remembered per program

}  // namespace

ThreadTuner::Entry& ThreadTuner::entry(idx n, int team) {
    ++clock_;
    Entry* found = nullptr;
    for (Entry& e : entries_)
        if (e.n == n) found = &e;
    if (!found) {
        if (entries_.size() < kMaxEntries) {
            entries_.emplace_back();
            found = &entries_.back();
        } else {  // forget the batch size used longest ago
            found = &*std::min_element(entries_.begin(), entries_.end(),
                                       [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
        }
        *found = Entry{};
        found->n = n;
    }
    if (found->team != team) {  // a new batch size, or the team changed (threadpoolctl): start over
        const idx keep = found->n;
        *found = Entry{};
        found->n = keep;
        found->team = team;
        const int candidates[kArms] = {team, (team + 1) / 2, 1};
        for (int c : candidates)
            if (std::find(found->threads, found->threads + found->arms, c) == found->threads + found->arms)
                found->threads[found->arms++] = c;
        found->gap = 0;  // probe after the first segment
    }
    found->last_use = clock_;
    return *found;
}

int ThreadTuner::begin(idx n, int team) {
    Entry& e = entry(n, team);
    current_ = &e;
    const bool probing = e.probe >= 0 && e.segment % 2 == 0;
    return e.threads[probing ? e.probe : e.best];
}

void ThreadTuner::start_probe(Entry& e) {
    int arm = e.next_probe % e.arms;  // the arms other than `best`, in turn
    if (arm == e.best) arm = (arm + 1) % e.arms;
    e.probe = arm;
    e.next_probe = arm + 1;
    e.segment = 0;
    e.probe_steps = e.best_steps = 0;
    e.probe_time = e.best_time = 0;
}

// Ends a probe: after its segments (verdict 0: the faster mean wins), or early with verdict -1
// (stay) or 1 (switch) when one count is hopelessly slower. The winner's mean step becomes the
// reference for later segments.
void ThreadTuner::finish_probe(Entry& e, int verdict) {
    const double b = e.best_steps > 0 ? e.best_time / e.best_steps : e.base;
    const double p = e.probe_time / double(std::max<long>(1, e.probe_steps));
    if (verdict > 0 || (verdict == 0 && p < kSwitch * b)) {
        e.best = e.probe;
        e.base = p;
        e.gap = kMinGap;
        e.min_gap = kMinGap;
    } else {
        if (b > 0) e.base = b;
        // What the probe cost over the current count: the next probes wait long enough that
        // they cost at most 1/kCostShare of the time (a team whose steps wait 70 ms for a
        // descheduled worker costs that much per probed step).
        const double lost = b > 0 ? std::max(0.0, e.probe_time - e.probe_steps * b) : 0.0;
        e.min_gap = std::max(kMinGap, kCostShare * lost);
        e.gap = std::max(std::min(std::max(2 * e.gap, kMinGap), kMaxGap), e.min_gap);
    }
    e.probe = -1;
    e.since_probe = 0;
}

void ThreadTuner::end(double seconds) {
    if (!current_) return;
    Entry& e = *current_;
    current_ = nullptr;
    if (e.runs++ == 0) return;  // the first run grows the buffers: not a step time
    e.seg_time += seconds;
    ++e.seg_steps;
    if (e.probe >= 0) {
        if (e.seg_time < kProbeWindow) return;
            const bool on_probe = e.segment % 2 == 0;
        if (on_probe) {
            e.probe_time += e.seg_time;
            e.probe_steps += e.seg_steps;
        } else {
            e.best_time += e.seg_time;
            e.best_steps += e.seg_steps;
        }
        e.seg_time = 0;
        e.seg_steps = 0;
        // A verdict as soon as one count is hopelessly slower than the other (one step of a
        // contended team can take a time slice or more: no need to see three of them).
        const double b = e.best_steps > 0 ? e.best_time / e.best_steps : e.base;
        const double p = e.probe_steps > 0 ? e.probe_time / e.probe_steps : 0;
        if (p > 0 && b > 0 && p > kHopeless * b) finish_probe(e, -1);
        else if (p > 0 && b > 0 && b > kHopeless * p) finish_probe(e, 1);
        else if (++e.segment == kProbeSegments) finish_probe(e, 0);
        return;
    }
    if (e.seg_time < kWindow) return;
    const double mean = e.seg_time / e.seg_steps;
    e.since_probe += e.seg_time;
    e.seg_time = 0;
    e.seg_steps = 0;
    if (e.base == 0) e.base = mean;
    // Much slower than when chosen: the load changed, probe again soon (but not sooner than
    // the last probe's cost allows).
    if (mean > kDegraded * e.base) e.gap = std::min(e.gap, std::max(kMinGap, e.min_gap * kDegradedShare));
    if (e.since_probe >= e.gap) start_probe(e);
}

int ThreadTuner::chosen(idx n) const {
    for (const Entry& e : entries_)
        if (e.n == n && e.arms > 0) return e.threads[e.best];
    return 0;
}

}  // namespace fastnn
