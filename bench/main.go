// Command bench measures skiff side by side with etcd and with bare
// hashicorp/raft, all three-node clusters in this one process on loopback
// with their data on disk and fsync on:
//
//   - skiff with each of its log stores (raft-boltdb/v2, raft-wal), driven
//     through the network client;
//   - etcd (embedded server, clientv3);
//   - bare hashicorp/raft with each log store, the same gRPC transport and
//     an in-memory map, written on the leader with raft.Apply: the ceiling
//     for any layer on this engine.
//
// It prints a Markdown report and writes it to results/. Run it from this
// directory:
//
//	go run .          # full run, under 10 minutes on 2 cores
//	go run . -quick   # smoke test, under a minute
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// plan is what one run measures.
type plan struct {
	quick       bool
	warm        time.Duration
	window      time.Duration
	keys        int   // key space of the throughput workloads
	writeConc   []int // concurrent clients of the write points
	readConc    int   // clients of the read and mixed points
	watchers    int
	watchRate   int // puts per second during the watch workload
	loadKeys    int
	loadBatch   int // keys per request in the load test, where the API allows
	fillClients int
	idle        time.Duration // to measure the background CPU of the idle systems
	only        string        // run only the workloads whose name contains this
}

func (p plan) wants(name string) bool { return strings.Contains(name, p.only) }

func fullPlan() plan {
	return plan{
		warm: time.Second, window: 5 * time.Second, keys: 100_000,
		writeConc: []int{1, 16, 64, 256}, readConc: 64,
		watchers: 100, watchRate: 200,
		loadKeys: 1_000_000, loadBatch: 100, fillClients: 256, idle: 3 * time.Second,
	}
}

func quickPlan() plan {
	return plan{
		quick: true, warm: 200 * time.Millisecond, window: 500 * time.Millisecond, keys: 10_000,
		writeConc: []int{16}, readConc: 64,
		watchers: 100, watchRate: 200,
		loadKeys: 10_000, loadBatch: 100, fillClients: 256, idle: 500 * time.Millisecond,
	}
}

// point is one workload at one concurrency.
type point struct {
	name    string
	clients int
	op      func(system) op
}

func (p plan) points() []point {
	var ps []point
	for _, c := range p.writeConc {
		ps = append(ps, point{"write", c, opPut})
	}
	return append(ps,
		point{"read (linearizable)", p.readConc, opGet},
		point{"read (stale / serializable)", p.readConc, opGetStale},
		point{"mix 90% read / 10% write", p.readConc, opMix},
	)
}

func main() {
	var (
		quick         = flag.Bool("quick", false, "smoke test: tiny windows, fewer points, 10k keys (under a minute)")
		systems       = flag.String("systems", "all", "comma-separated systems to run: "+fmt.Sprint(allKinds))
		points        = flag.String("points", "", "run only the workloads whose name contains this (write, read, stale, mix, watch, load)")
		out           = flag.String("out", "", "report file (default results/YYYY-MM-DD-HHMM[-quick].md)")
		dir           = flag.String("dir", os.TempDir(), "parent of the data dirs; must be on a real disk, not tmpfs")
		loadKeys      = flag.Int("load-keys", 0, "keys for the load test (default 1M, 10k with -quick)")
		loadBatch     = flag.Int("load-batch", 0, "keys per request in the load test for etcd and bare raft (default 100; skiff has no multi-key write)")
		verbose       = flag.Bool("v", false, "let the systems log at info level, not only errors")
		cpuProfile    = flag.String("cpuprofile", "", "write a CPU profile of the run (not of load-test children) to this file")
		loadChildKind = flag.String("load-child", "", "internal: run one system's load test and print JSON")
	)
	flag.Parse()
	logLevel = verbosity(*verbose)
	if *loadChildKind != "" {
		loadChild(systemKind(*loadChildKind), *loadKeys, *loadBatch, *dir)
		return
	}
	p := fullPlan()
	if *quick {
		p = quickPlan()
	}
	if *loadKeys > 0 {
		p.loadKeys = *loadKeys
	}
	if *loadBatch > 0 {
		p.loadBatch = *loadBatch
	}
	kinds, err := parseKinds(*systems)
	if err != nil {
		fatal(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p.only = *points
	rep, err := run(ctx, p, kinds, *dir)
	if err != nil {
		fatal(err)
	}
	md := rep.markdown()
	fmt.Print(md)
	path := *out
	if path == "" {
		suffix := ""
		if p.quick {
			suffix = "-quick"
		}
		path = filepath.Join("results", rep.started.Format("2006-01-02-1504")+suffix+".md")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "report written to %s\n", path)
	if rep.failed() {
		fatal(fmt.Errorf("some measurements failed; see the notes in %s", path))
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// run starts every system, measures every point with the systems
// interleaved, closes them and runs the load test.
func run(ctx context.Context, p plan, kinds []systemKind, dir string) (*report, error) {
	rep := newReport(p, dir)
	base, err := os.MkdirTemp(dir, "skiff-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	if fs := fsType(base); fs == "tmpfs" || fs == "ramfs" {
		rep.notes = append(rep.notes, fmt.Sprintf("data dir %s is on %s: fsync costs nothing there", dir, fs))
	}

	progress("starting %d systems", len(kinds))
	systems, err := startAll(ctx, kinds, base)
	defer func() {
		for _, s := range systems {
			if s != nil {
				s.close()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	for _, s := range systems {
		rep.systems = append(rep.systems, s.name())
		progress("%s: writing %d keys", s.name(), p.keys)
		t := time.Now()
		if err := fill(ctx, s, p.keys, p.fillClients, p.loadBatch); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name(), err)
		}
		progress("%s: %d keys in %.1fs", s.name(), p.keys, time.Since(t).Seconds())
	}

	runtime.GC()
	cpu0, t0 := cpuTime(), time.Now()
	sleepUntil(ctx, t0.Add(p.idle))
	rep.idleCPU = float64(cpuTime()-cpu0) / float64(time.Since(t0))
	progress("idle: %.0f ms of CPU per second", 1000*rep.idleCPU)

	for i, pt := range p.points() {
		if !p.wants(pt.name) {
			continue
		}
		row := rep.addPoint(fmt.Sprintf("%s, %d %s", pt.name, pt.clients, plural(pt.clients, "client", "clients")))
		for j := range systems {
			// Rotate the order so no system always runs first.
			s := systems[(i+j)%len(systems)]
			runtime.GC()
			r := closedLoop(ctx, pt.clients, p.keys, p.warm, p.window, uint64(i+1), pt.op(s))
			row[s.name()] = r
			progress("%-28s %-20s %9.0f ops/s  p50 %7.2fms  p99 %7.2fms", pt.name+"/"+fmt.Sprint(pt.clients), s.name(),
				r.opsPerSec(), ms(r.lat.quantile(0.5)), ms(r.lat.quantile(0.99)))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}

	for _, s := range systems {
		if !p.wants("watch") {
			break
		}
		runtime.GC()
		r := watchLoad(ctx, s, p.watchers, p.watchRate, p.warm, p.window)
		rep.watch[s.name()] = r
		if r.na {
			progress("watch %-20s n/a", s.name())
			continue
		}
		progress("watch %-20s %9.0f events/s  p50 %7.2fms  p99 %7.2fms", s.name(),
			r.opsPerSec(), ms(r.lat.quantile(0.5)), ms(r.lat.quantile(0.99)))
	}
	for i, s := range systems {
		s.close()
		systems[i] = nil
	}

	for _, k := range kinds {
		if !p.wants("load") {
			break
		}
		progress("load test: %s, %d keys", k, p.loadKeys)
		r := runLoadChild(ctx, k, p.loadKeys, p.loadBatch, dir)
		rep.loads = append(rep.loads, r)
		if r.Err != "" {
			progress("load test: %s: %s", k, r.Err)
			continue
		}
		replayed := ""
		if r.Tail >= 0 {
			replayed = fmt.Sprintf(" (%d entries replayed)", r.Tail)
		}
		progress("load test: %s: loaded in %.1fs, %.0f MiB/node, RSS %.0f MiB, restart to first read %.0fms (reopen %.0fms)%s",
			k, r.LoadTook.Seconds(), mib(r.DiskPerNode), mib(r.RSS), ms(r.Restart), ms(r.Open), replayed)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	rep.finished = time.Now()
	return rep, nil
}

// startAll starts the systems concurrently: starting is mostly waiting for
// elections.
func startAll(ctx context.Context, kinds []systemKind, base string) ([]system, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	systems := make([]system, len(kinds))
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, k := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			systems[i], errs[i] = startSystem(ctx, k, base)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("start %s: %w", k, errs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return systems, err
		}
	}
	return systems, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
