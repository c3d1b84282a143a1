package app

import (
	"runtime"
	"testing"
)

func TestProcsFor(t *testing.T) {
	for _, c := range []struct{ cores, want int }{{1, 2}, {2, 4}, {4, 8}, {8, 12}, {16, 20}, {64, 68}} {
		if got := procsFor(c.cores); got != c.want {
			t.Errorf("procsFor(%d) = %d, want %d", c.cores, got, c.want)
		}
	}
}

// TestSetProcs: the server runs more Ps than cores unless GOMAXPROCS says
// otherwise, the same number however often it starts in one process, and
// gives the old number back when it stops.
func TestSetProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	runtime.SetDefaultGOMAXPROCS()
	cores := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(before)

	want := procsFor(cores)
	if cores < runtime.NumCPU() {
		want = cores // a CPU quota: Go's default is kept
	}
	unset := func(string) string { return "" }
	n, restore := setProcs(unset)
	if n != want || runtime.GOMAXPROCS(0) != n {
		t.Fatalf("setProcs = %d, GOMAXPROCS %d; want %d for %d cores (%d CPUs)", n, runtime.GOMAXPROCS(0), want, cores, runtime.NumCPU())
	}
	n2, restore2 := setProcs(unset) // a second server in the same process
	if n2 != n {
		t.Errorf("second setProcs = %d, want %d again", n2, n)
	}
	restore2()
	restore()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("after restore GOMAXPROCS = %d, want %d", got, before)
	}

	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}
	if n, restore := setProcs(set); n != before || runtime.GOMAXPROCS(0) != before {
		t.Errorf("with GOMAXPROCS set: %d (GOMAXPROCS %d), want it left at %d", n, runtime.GOMAXPROCS(0), before)
	} else {
		restore()
	}
}
