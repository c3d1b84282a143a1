package app

import "runtime"

// setProcs runs a few more Ps than the cores this process may use, unless
// GOMAXPROCS is set or a CPU quota (a container's limit) is below them,
// and returns the number in use.
//
// Why: a goroutine that is ready (a model's chunk or a person's message
// that has arrived) waits for a P, and a P is held for the whole CPU time
// of whatever runs on it: a pure-Go SQLite statement (0.2-1 ms), a
// question's write transaction, a password hash (tens of ms). With one P
// per core, two of those on two cores stall every other goroutine; with a
// few more Ps the ready goroutine gets one at once and the kernel shares
// the cores, giving the one that just woke its turn quickly. Measured at
// 200 answers streaming on 2 cores (docs/BENCHMARKS.md, round 6): the
// relay's p99 from the chunk's arrival 8-19 ms with 2 Ps, 2.3 ms with 4 or
// 8, 3.9 ms with 16. The extra Ps are capped (cores+4) because each also
// counts toward the garbage collector's workers.
//
// Under a CPU quota (Docker's cpus, a Kubernetes limit) Go's default
// already follows the quota; more runnable threads than the quota would
// have the kernel throttle the whole process for the rest of each period,
// the opposite of the aim, so the default is kept there.
//
// restore puts back what was in use before (serve does when it returns,
// for tests that run a server in their own process).
func setProcs(getenv func(string) string) (n int, restore func()) {
	prev := runtime.GOMAXPROCS(0)
	if getenv("GOMAXPROCS") != "" {
		return prev, func() {}
	}
	runtime.SetDefaultGOMAXPROCS() // the cores or the quota, whatever an earlier call set
	cores := runtime.GOMAXPROCS(0)
	if cores < runtime.NumCPU() { // a quota
		return cores, func() { runtime.GOMAXPROCS(prev) }
	}
	n = procsFor(cores)
	runtime.GOMAXPROCS(n)
	return n, func() { runtime.GOMAXPROCS(prev) }
}

// procsFor is the number of Ps for cores cores: twice as many, at most
// four more.
func procsFor(cores int) int { return min(2*cores, cores+4) }
