// The thread count of a recorded program's runs, chosen at run time from measured step times.
//
// Every kernel gives the same bits on any number of threads, so the count is free to change from
// one step to the next. On an idle machine the whole team is fastest; with another process busy
// on a core (or NumPy's OpenBLAS workers still spinning after a matmul in the same process) every
// parallel region's join waits for a thread the OS has descheduled, and fewer threads win by 2-4x.
// A virtual machine's vCPUs can also sit far apart on the host for seconds at a time (a cache
// line's round trip between two threads, measure_core_round_trip in probe.h, rising from about
// 85 to 430 ns): then a batch-32 step of the BN model runs 0.6-0.75x as fast on two threads.
// A ThreadTuner (one per program) keeps, per batch size, the count that ran fastest: it times each
// run, and now and then runs a few steps on another count, alternating with the current one so
// that both see the same load; it switches when the other count's mean step is faster. Probes come
// soon after a start or a switch and then ever more rarely (the gap doubles each time the current
// count wins, up to 4 seconds), and at once when the current count's recent steps have become
// much slower than when it was chosen (the load changed).
// set_num_threads(n) pins n: no tuning (threads_pinned()).
#pragma once

#include <atomic>
#include <vector>

#include "common.h"

namespace fastnn {

// True after set_num_threads(n): every run uses the OpenMP thread count as it is.
inline std::atomic<bool>& threads_pinned() {
    static std::atomic<bool> pinned{false};
    return pinned;
}

class ThreadTuner {
public:
    // The thread count for the next run of n rows with a team of `team` (> 1) threads. Every
    // begin() is followed by end() with the run's wall time.
    int begin(idx n, int team);
    void end(double seconds);

    // What the tuner uses now for n rows (0 when it has not seen n), for tests and benchmarks.
    int chosen(idx n) const;

private:
    static constexpr int kArms = 3;  // the team, half of it, one thread (duplicates dropped)
    // Steps are compared by their mean time over segments of several milliseconds, never by a
    // median: a descheduled worker costs a few steps a whole time slice each (4 ms on Linux)
    // and leaves the others fast, so the median of a contended team looks fine when its mean
    // is 2-10x worse.
    struct Entry {
        idx n = -1;
        int team = 0;
        int arms = 0;
        int threads[kArms] = {0, 0, 0};
        int best = 0;                 // arm in use
        int probe = -1;               // arm under probe, -1 while exploiting
        int next_probe = 1;           // the arm the next probe tries (the others, in turn)
        int segment = 0;              // probe segments done: even ones on `probe`, odd on `best`
        long seg_steps = 0;           // the current segment's steps and seconds
        double seg_time = 0;
        long probe_steps = 0, best_steps = 0;  // a probe's totals for either arm
        double probe_time = 0, best_time = 0;
        double base = 0;              // the best arm's mean step when it was last confirmed
        double since_probe = 0;       // seconds exploited since the last probe
        double gap = 0;               // seconds to exploit before the next probe
        double min_gap = 0;           // ... at least (bounded by what the last probe cost)
        long runs = 0;
        long last_use = 0;
    };
    Entry& entry(idx n, int team);
    void start_probe(Entry& e);
    void finish_probe(Entry& e, int verdict);
    std::vector<Entry> entries_;
    Entry* current_ = nullptr;
    long clock_ = 0;
};

}  // namespace fastnn
