package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// hist is a log-linear histogram of durations: exact below 128 ns, then 128
// buckets per power of two (under 0.8 % error). Recording is one atomic add,
// so every reader goroutine records into the same histogram.
type hist struct {
	counts [64 * 128]atomic.Uint64
	n      atomic.Uint64
}

const histSub = 128

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - 8 // keep the top 8 bits: 128..255
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return m<<shift + (1<<shift)/2
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
	h.n.Add(1)
}

// quantile returns the q-quantile (0 < q <= 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}

func (h *hist) max() time.Duration {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if h.counts[i].Load() > 0 {
			return time.Duration(histValue(i))
		}
	}
	return 0
}

// figure is one line of the result table.
type figure struct {
	Key   string  `json:"-"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// report is the outcome of one scenario run.
type report struct {
	Scenario  string         `json:"scenario"`
	Server    string         `json:"server"`
	Domain    string         `json:"domain"`
	TLS       string         `json:"tls"`
	Mechs     []string       `json:"sasl"`
	Params    map[string]any `json:"params"`
	Figures   []figure       `json:"-"`
	Errors    map[string]int `json:"errors,omitempty"`
	Anomalies int            `json:"anomalies"`
	Notes     []string       `json:"notes,omitempty"`
	Started   time.Time      `json:"started"`
	Wall      float64        `json:"wall_s"`
	Tool      toolUsage      `json:"tool"`
	ServerUse *serverUsage   `json:"server_process,omitempty"`
	errMu     sync.Mutex     `json:"-"`
}

type toolUsage struct {
	CPU        float64 `json:"cpu_s"`
	CoresUsed  float64 `json:"cores_used"` // CPU time / wall time
	PeakRSS    int64   `json:"peak_rss_bytes"`
	Goroutines int     `json:"peak_goroutines"`
	NumCPU     int     `json:"machine_cores"`
	ScramPBKDF int64   `json:"scram_pbkdf2_runs"`
	ScramCache int64   `json:"scram_cache_hits"`
	// OtherCores is the CPU the rest of the machine used meanwhile (busy
	// time from /proc/stat minus the tool and the server): other load skews
	// the figures.
	OtherCores float64 `json:"other_processes_cores"`
}

type serverUsage struct {
	PID       int     `json:"pid"`
	CPU       float64 `json:"cpu_s"`
	CoresUsed float64 `json:"cores_used"`
	RSSBefore int64   `json:"rss_before_bytes"`
	RSSAfter  int64   `json:"rss_after_bytes"`
}

func (r *report) add(key, label string, v float64, unit string) {
	r.Figures = append(r.Figures, figure{Key: key, Label: label, Value: v, Unit: unit})
}

func (r *report) addDur(key, label string, d time.Duration) {
	r.add(key, label, float64(d)/float64(time.Millisecond), "ms")
}

const maxErrorKinds = 20

// addError counts an error by its message (after dropping addresses and
// ports, which make every message unique).
func (r *report) addError(err error) {
	msg := err.Error()
	msg = reAddr.ReplaceAllString(msg, "ADDR")
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.Errors == nil {
		r.Errors = map[string]int{}
	}
	if _, ok := r.Errors[msg]; !ok && len(r.Errors) >= maxErrorKinds {
		msg = "(other errors)"
	}
	r.Errors[msg]++
}

func (r *report) errorCount() int {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

func (r *report) MarshalJSON() ([]byte, error) {
	type plain report
	figs := map[string]figure{}
	for _, f := range r.Figures {
		figs[f.Key] = f
	}
	return json.Marshal(struct {
		*plain
		Figures map[string]figure `json:"figures"`
	}{(*plain)(r), figs})
}

func fmtValue(f figure) string {
	switch {
	case f.Unit == "B":
		return fmtBytes(f.Value)
	case f.Value == float64(int64(f.Value)) && f.Value < 1e15:
		return fmt.Sprintf("%d", int64(f.Value))
	case f.Value >= 100:
		return fmt.Sprintf("%.0f", f.Value)
	case f.Value >= 1:
		return fmt.Sprintf("%.2f", f.Value)
	default:
		return fmt.Sprintf("%.3f", f.Value)
	}
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30 || v <= -(1<<30):
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20 || v <= -(1<<20):
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10 || v <= -(1<<10):
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// writeTable prints the human summary.
func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\nxmppbench %s — %s (domain %s, %s, %s)\n", r.Scenario, r.Server, r.Domain, r.TLS, strings.Join(r.Mechs, "/"))
	var ps []string
	for k, v := range r.Params {
		ps = append(ps, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(ps)
	fmt.Fprintf(w, "params: %s\n\n", strings.Join(ps, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, f := range r.Figures {
		unit := f.Unit
		if unit == "B" {
			unit = ""
		}
		fmt.Fprintf(tw, "%s\t  %s\t %s\t\n", f.Label, fmtValue(f), unit)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntool:   %.2f s CPU over %.2f s wall = %.2f of %d cores; peak RSS %s; peak goroutines %d; PBKDF2 runs %d (cache hits %d)\n",
		r.Tool.CPU, r.Wall, r.Tool.CoresUsed, r.Tool.NumCPU, fmtBytes(float64(r.Tool.PeakRSS)), r.Tool.Goroutines, r.Tool.ScramPBKDF, r.Tool.ScramCache)
	if s := r.ServerUse; s != nil {
		fmt.Fprintf(w, "server: pid %d, %.2f s CPU = %.2f cores; RSS %s before, %s after\n",
			s.PID, s.CPU, s.CoresUsed, fmtBytes(float64(s.RSSBefore)), fmtBytes(float64(s.RSSAfter)))
	}
	fmt.Fprintf(w, "other processes on this machine used %.2f cores meanwhile", r.Tool.OtherCores)
	if r.Tool.OtherCores > 0.2 {
		fmt.Fprintf(w, " — the figures are skewed by other load")
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "errors:\n")
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return r.Errors[keys[i]] > r.Errors[keys[j]] })
		for _, k := range keys {
			fmt.Fprintf(w, "  %6d × %s\n", r.Errors[k], k)
		}
	}
	if r.Anomalies > 0 {
		fmt.Fprintf(w, "ANOMALIES: %d (see the figures above)\n", r.Anomalies)
	}
}

// usage samples the tool's and the server's CPU and the tool's goroutines.
type usage struct {
	start      time.Time
	cpu0       time.Duration
	srvPID     int
	srvCPU0    time.Duration
	srvRSS0    int64
	busy0      time.Duration
	goroutines atomic.Int64
	stop       chan struct{}
	done       chan struct{}
}

func startUsage(serverPID int) *usage {
	u := &usage{start: time.Now(), srvPID: serverPID, stop: make(chan struct{}), done: make(chan struct{})}
	u.cpu0, _ = selfUsage()
	u.busy0, _ = machineBusy()
	if serverPID > 0 {
		u.srvCPU0, _ = procCPU(serverPID)
		u.srvRSS0, _ = procStatus(serverPID, "VmRSS")
	}
	go func() {
		defer close(u.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if g := int64(runtime.NumGoroutine()); g > u.goroutines.Load() {
				u.goroutines.Store(g)
			}
			select {
			case <-u.stop:
				return
			case <-t.C:
			}
		}
	}()
	return u
}

// finish fills the tool and server usage into r.
func (u *usage) finish(r *report, cache *scramCache) {
	close(u.stop)
	<-u.done
	wall := time.Since(u.start)
	cpu, rss := selfUsage()
	if hwm, err := procStatus(os.Getpid(), "VmHWM"); err == nil && hwm > rss {
		rss = hwm
	}
	r.Wall = wall.Seconds()
	r.Tool = toolUsage{
		CPU: (cpu - u.cpu0).Seconds(), CoresUsed: (cpu - u.cpu0).Seconds() / wall.Seconds(),
		PeakRSS: rss, Goroutines: int(u.goroutines.Load()), NumCPU: runtime.NumCPU(),
		ScramPBKDF: cache.misses.Load(), ScramCache: cache.hits.Load(),
	}
	if u.srvPID > 0 {
		s := &serverUsage{PID: u.srvPID, RSSBefore: u.srvRSS0}
		if c, err := procCPU(u.srvPID); err == nil {
			s.CPU = (c - u.srvCPU0).Seconds()
			s.CoresUsed = s.CPU / wall.Seconds()
		}
		s.RSSAfter, _ = procStatus(u.srvPID, "VmRSS")
		r.ServerUse = s
	}
	if busy, err := machineBusy(); err == nil && u.busy0 > 0 {
		other := (busy - u.busy0).Seconds() - r.Tool.CPU
		if r.ServerUse != nil {
			other -= r.ServerUse.CPU
		}
		r.Tool.OtherCores = max(other, 0) / wall.Seconds()
	}
}

// progress rewrites one status line on w at most once a second.
type progress struct {
	w    io.Writer
	line func() string
	stop chan struct{}
	done chan struct{}
}

func startProgress(w io.Writer, scenario string, line func() string) *progress {
	p := &progress{w: w, line: line, stop: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		width := 0
		for {
			select {
			case <-p.stop:
				fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", width))
				return
			case <-t.C:
			}
			s := fmt.Sprintf("[%s %3.0fs] %s", scenario, time.Since(start).Seconds(), p.line())
			pad := ""
			if len(s) < width {
				pad = strings.Repeat(" ", width-len(s))
			}
			width = len(s)
			fmt.Fprintf(w, "\r%s%s", s, pad)
		}
	}()
	return p
}

func (p *progress) end() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.stop)
	<-p.done
}
