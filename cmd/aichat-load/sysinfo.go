package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clientSnap is the generator's own resource use at one moment.
type clientSnap struct {
	At         time.Time
	CPU        time.Duration // user + system
	RSS        int64         // VmRSS
	HeapInuse  uint64
	StackInuse uint64
	Goroutines int
}

func clientNow() clientSnap {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := clientSnap{At: time.Now(), HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
	s.CPU = processCPU()
	s.RSS = procStatusKB("/proc/self/status", "VmRSS") * 1024
	return s
}

// ClientReport is the generator's resource use over a phase.
type ClientReport struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPercent      float64 `json:"cpu_percent"`
	RSSBefore       int64   `json:"rss_before_bytes"`
	RSSAfter        int64   `json:"rss_after_bytes"`
	HeapInuseAfter  uint64  `json:"heap_inuse_after_bytes"`
	StackInuseAfter uint64  `json:"stack_inuse_after_bytes"`
	GoroutinesAfter int     `json:"goroutines_after"`
	NofileSoft      uint64  `json:"nofile_soft"`
	NofileHard      uint64  `json:"nofile_hard"`
	GOMAXPROCS      int     `json:"gomaxprocs"`
}

func compareClient(a, b clientSnap) ClientReport {
	r := ClientReport{
		CPUSeconds:      (b.CPU - a.CPU).Seconds(),
		RSSBefore:       a.RSS,
		RSSAfter:        b.RSS,
		HeapInuseAfter:  b.HeapInuse,
		StackInuseAfter: b.StackInuse,
		GoroutinesAfter: b.Goroutines,
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
	}
	if s := b.At.Sub(a.At).Seconds(); s > 0 {
		r.CPUPercent = 100 * r.CPUSeconds / s
	}
	r.NofileSoft, r.NofileHard = nofileSoft, nofileHard
	return r
}

// kernelSnap is the machine-wide socket memory: it covers the server's
// and the generator's sockets alike.
type kernelSnap struct {
	TCPInuse   int64 // sockets in use (/proc/net/sockstat)
	TCPMemPage int64 // pages queued in socket buffers
	SlabKB     int64 // /proc/meminfo Slab
}

func kernelNow() kernelSnap {
	var k kernelSnap
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "TCP:") {
				continue
			}
			f := strings.Fields(line)
			for i := 1; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				switch f[i] {
				case "inuse":
					k.TCPInuse = n
				case "mem":
					k.TCPMemPage = n
				}
			}
		}
	}
	k.SlabKB = procStatusKB("/proc/meminfo", "Slab")
	return k
}

// procStatusKB reads a "Key:   123 kB" line of a /proc file.
func procStatusKB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotalB int64  `json:"mem_total_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	PortRange string `json:"ip_local_port_range"`
}

func machineNow() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		MemTotalB: procStatusKB("/proc/meminfo", "MemTotal") * 1024}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = string(bytes.TrimSpace(b))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		m.PortRange = strings.Join(strings.Fields(string(b)), "-")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// cpuSnap is the machine-wide CPU time from /proc/stat, in clock ticks
// (USER_HZ, 100 a second on Linux).
type cpuSnap struct {
	At      time.Time
	Busy    int64 // everything but idle and iowait
	SoftIRQ int64 // network receive work, on loopback mostly our own
	Total   int64
	Load1   float64 // 1-minute load average
}

func cpuNow() cpuSnap {
	s := cpuSnap{At: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) > 5 && f[0] == "cpu" {
			for i, v := range f[1:] {
				n, _ := strconv.ParseInt(v, 10, 64)
				if i >= 8 { // guest time is already in user
					break
				}
				s.Total += n
				if i != 3 && i != 4 { // idle, iowait
					s.Busy += n
				}
				if i == 6 {
					s.SoftIRQ = n
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			s.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return s
}

// MachineCPU is how busy the whole machine was during a phase, and how
// much of that was neither the servers nor the generator: other work on a
// shared machine skews latencies, so a report says how much there was.
type MachineCPU struct {
	BusyPercent    float64 `json:"busy_percent"`    // of all cores together: 200 % is two cores full
	SoftIRQPercent float64 `json:"softirq_percent"` // not charged to any process
	OthersPercent  float64 `json:"others_percent"`  // busy − softirq − servers − generator
	Load1Before    float64 `json:"load1_before"`
	Load1After     float64 `json:"load1_after"`
}

const userHZ = 100

func compareCPU(a, b cpuSnap, servers []ServerReport, client ClientReport) MachineCPU {
	m := MachineCPU{Load1Before: a.Load1, Load1After: b.Load1}
	sec := b.At.Sub(a.At).Seconds()
	if sec <= 0 {
		return m
	}
	busy := float64(b.Busy-a.Busy) / userHZ
	m.BusyPercent = 100 * busy / sec
	own := client.CPUSeconds
	for _, s := range servers {
		own += s.CPUSeconds
	}
	soft := float64(b.SoftIRQ-a.SoftIRQ) / userHZ
	m.SoftIRQPercent = 100 * soft / sec
	m.OthersPercent = max(0, 100*(busy-soft-own)/sec)
	return m
}

func machineCPUs() int { return runtime.NumCPU() }
