package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// report collects one run's results and renders them as Markdown.
type report struct {
	plan     plan
	dir      string
	started  time.Time
	finished time.Time
	systems  []string // row order
	points   []string
	rows     map[string]map[string]*result // point -> system -> result
	watch    map[string]*result
	loads    []loadResult
	notes    []string // about the run
	found    []string // about results, collected while rendering
	idleCPU  float64  // CPU seconds per second of all systems idle
}

func newReport(p plan, dir string) *report {
	return &report{plan: p, dir: dir, started: time.Now(),
		rows: map[string]map[string]*result{}, watch: map[string]*result{}}
}

func (r *report) addPoint(name string) map[string]*result {
	r.points = append(r.points, name)
	r.rows[name] = map[string]*result{}
	return r.rows[name]
}

// failed reports whether a measurement could not be taken (as opposed to
// one the system does not support).
func (r *report) failed() bool {
	for _, row := range r.rows {
		for _, res := range row {
			if res.err != nil || res.ops == 0 {
				return true
			}
		}
	}
	for _, res := range r.watch {
		if res.err != nil || !res.na && res.ops == 0 {
			return true
		}
	}
	for _, l := range r.loads {
		if l.Err != "" {
			return true
		}
	}
	return false
}

// skiffPeers returns the etcd and bare-raft rows a skiff row compares
// with: same log store for bare raft.
func skiffPeers(name string) (etcd, bare string, ok bool) {
	store, ok := strings.CutPrefix(name, "skiff (")
	if !ok {
		return "", "", false
	}
	return "etcd", "bare raft (" + store, true
}

func (r *report) markdown() string {
	var b strings.Builder
	mode := "full"
	if r.plan.quick {
		mode = "quick (smoke test: tiny windows, fewer points; not for comparison)"
	}
	fmt.Fprintf(&b, "# skiff benchmark, %s\n\n", r.started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Mode: %s. Wall time: %s.\n\n", mode, r.finished.Sub(r.started).Round(time.Second))
	r.writeEnvironment(&b)
	r.writeMethod(&b)
	r.found = nil
	if len(r.points) > 0 {
		r.writeThroughput(&b)
	}
	if len(r.watch) > 0 {
		r.writeWatch(&b)
	}
	if len(r.loads) > 0 {
		r.writeLoad(&b)
	}
	if notes := append(r.notes, r.found...); len(notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *report) writeEnvironment(b *strings.Builder) {
	model, cores := cpuInfo()
	b.WriteString("## Environment\n\n")
	fmt.Fprintf(b, "- Machine: %s, %d cores (/proc/cpuinfo), GOMAXPROCS %d, Linux %s\n",
		model, cores, runtime.GOMAXPROCS(0), strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")))
	fmt.Fprintf(b, "- Data dirs: below %s (%s)\n", r.dir, fsType(r.dir))
	fmt.Fprintf(b, "- Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if c := skiffCommit(); c != "" {
		fmt.Fprintf(b, "- skiff: %s\n", c)
	}
	b.WriteString("- Modules:")
	for _, d := range depVersions() {
		fmt.Fprintf(b, " %s;", d)
	}
	b.WriteString("\n\n")
}

func (r *report) writeMethod(b *strings.Builder) {
	p := r.plan
	b.WriteString("## Method\n\n")
	fmt.Fprintf(b, "Each system is three members in this one process on loopback, data on disk, fsync on: "+
		"skiff through its network client (`skiff.Dial`), etcd through clientv3 (every member an endpoint), "+
		"bare hashicorp/raft (same gRPC transport, skiff's Raft settings, in-memory map state machine) "+
		"by `raft.Apply` on the leader, linearizable reads as `VerifyLeader` plus a map lookup, stale reads as "+
		"a map lookup on any member. Both write one log entry per write; Raft puts concurrent entries into "+
		"one append either way, and skiff's client also sends concurrent calls in one RPC. Closed-loop clients, %d-byte values, keys uniform over %d keys written "+
		"beforehand. Each point: %v warm-up, then a %v window; only operations that start and end in the window "+
		"count. Systems run one after another at each point, starting with a different one each point. "+
		"CPU µs/op is the process's user+system CPU time (getrusage) over the window divided by the operations, "+
		"clients included, and the other systems idle in the background: all of them together, idle, used "+
		"%.0f ms of CPU per second, which dominates the figure at low rates. Ratios are of ops/s: skiff over etcd, "+
		"and skiff over bare raft with the same log store. The key space is written beforehand in batches where "+
		"the API has them (etcd, bare raft) and with single puts for skiff.\n\n",
		valueSize, p.keys, p.warm, p.window, 1000*r.idleCPU)
}

func (r *report) writeThroughput(b *strings.Builder) {
	b.WriteString("## Throughput and latency\n\n")
	b.WriteString("| workload | system | ops/s | p50 ms | p99 ms | CPU µs/op | ops/s × etcd | ops/s × bare raft |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, pt := range r.points {
		row := r.rows[pt]
		for _, sys := range r.systems {
			res := row[sys]
			if res == nil {
				continue
			}
			vsEtcd, vsRaft := "", ""
			if e, raft, ok := skiffPeers(sys); ok {
				vsEtcd = ratio(res, row[e])
				vsRaft = ratio(res, row[raft])
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", pt, sys,
				fmtOps(res), fmtMs(res, 0.5), fmtMs(res, 0.99), fmtCPU(res), vsEtcd, vsRaft)
			if res.note != "" {
				r.found = append(r.found, fmt.Sprintf("%s, %s: %s", pt, sys, res.note))
			}
		}
	}
	b.WriteString("\n")
}

func (r *report) writeWatch(b *strings.Builder) {
	p := r.plan
	fmt.Fprintf(b, "## Watch delivery\n\n%d watchers on one prefix through the system's client while one writer "+
		"puts into it at %d puts/s (the same offered load for every system). Latency: from issuing the put to "+
		"the event reaching a watcher. Events/s counts deliveries to all watchers.\n\n", p.watchers, p.watchRate)
	b.WriteString("| system | events/s | p50 ms | p99 ms | CPU µs/event | p50 × etcd | p99 × etcd |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	etcd := r.watch["etcd"]
	skiffNA := false
	for _, sys := range r.systems {
		res := r.watch[sys]
		if res == nil {
			continue
		}
		if res.na {
			fmt.Fprintf(b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a |\n", sys)
			skiffNA = skiffNA || strings.HasPrefix(sys, "skiff")
			continue
		}
		r50, r99 := "", ""
		if strings.HasPrefix(sys, "skiff") && etcd != nil && !etcd.na && etcd.ops > 0 {
			r50 = fmt.Sprintf("%.2f", float64(res.lat.quantile(0.5))/float64(etcd.lat.quantile(0.5)))
			r99 = fmt.Sprintf("%.2f", float64(res.lat.quantile(0.99))/float64(etcd.lat.quantile(0.99)))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", sys, fmtOps(res), fmtMs(res, 0.5), fmtMs(res, 0.99),
			fmtCPU(res), r50, r99)
		if res.note != "" {
			r.found = append(r.found, fmt.Sprintf("watch, %s: %s", sys, res.note))
		}
	}
	b.WriteString("\n")
	if skiffNA {
		b.WriteString("skiff watch not available in this build. Bare raft has no watch.\n\n")
	} else {
		b.WriteString("Bare raft has no watch.\n\n")
	}
}

func (r *report) writeLoad(b *strings.Builder) {
	fmt.Fprintf(b, "## Load, size, restart\n\n"+
		"Each system fresh in a child process of its own: %d keys written by %d concurrent clients "+
		"(etcd: transactions of %d puts; bare raft: %d puts per log entry; skiff: single-key `Put` calls, its "+
		"API having no multi-key write), then the disk space of the data dirs (allocated blocks, mean per member), the child "+
		"process's resident set (three members and the client), and the time from reopening a follower, "+
		"stopped once it had applied every write, to its first local (stale / serializable) read that returns the last value written. "+
		"The Raft-based systems restore their latest snapshot and then replay the log past it (the \"replayed\" "+
		"column, entries, as the follower stood when stopped), so their restart time depends on how long ago "+
		"the last snapshot was taken; etcd's state is on disk. skiff replays the entries it had applied before it "+
		"stopped by itself; bare raft applies them once the leader tells it the commit index, and a leader retries a "+
		"member that was down with a growing backoff.\n\n",
		r.plan.loadKeys, r.plan.fillClients, r.plan.loadBatch, r.plan.loadBatch)
	b.WriteString("| system | keys | load s | keys/s | disk MiB/member | RSS MiB | restart → first read ms | replayed | disk × etcd | RSS × etcd | restart × etcd |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var etcd *loadResult
	for i := range r.loads {
		if r.loads[i].System == string(kindEtcd) && r.loads[i].Err == "" {
			etcd = &r.loads[i]
		}
	}
	for _, l := range r.loads {
		name := displayName(systemKind(l.System))
		if l.Err != "" {
			fmt.Fprintf(b, "| %s | %d | failed | | | | | | | | |\n", name, l.Keys)
			r.found = append(r.found, fmt.Sprintf("load test, %s: %s", name, l.Err))
			continue
		}
		rd, rr, rt := "", "", ""
		if etcd != nil && strings.HasPrefix(l.System, "skiff") {
			rd = fmt.Sprintf("%.2f", float64(l.DiskPerNode)/float64(etcd.DiskPerNode))
			rr = fmt.Sprintf("%.2f", float64(l.RSS)/float64(etcd.RSS))
			rt = fmt.Sprintf("%.2f", float64(l.Restart)/float64(etcd.Restart))
		}
		tail := "—"
		if l.Tail >= 0 {
			tail = strconv.FormatInt(l.Tail, 10)
		}
		fmt.Fprintf(b, "| %s | %d | %.1f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n", name, l.Keys,
			l.LoadTook.Seconds(), float64(l.Keys)/l.LoadTook.Seconds(), mib(l.DiskPerNode), mib(l.RSS), ms(l.Restart),
			tail, rd, rr, rt)
	}
	b.WriteString("\n")
}

func displayName(k systemKind) string {
	switch k {
	case kindSkiffBolt:
		return "skiff (boltdb)"
	case kindSkiffWAL:
		return "skiff (wal)"
	case kindRaftBolt:
		return "bare raft (boltdb)"
	case kindRaftWAL:
		return "bare raft (wal)"
	}
	return string(k)
}

func ratio(a, b *result) string {
	if a == nil || b == nil || a.ops == 0 || b.ops == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a.opsPerSec()/b.opsPerSec())
}

func fmtOps(r *result) string {
	if r.err != nil || r.ops == 0 {
		return "failed"
	}
	return fmt.Sprintf("%.0f", r.opsPerSec())
}

func fmtMs(r *result, q float64) string {
	if r.ops == 0 {
		return ""
	}
	d := ms(r.lat.quantile(q))
	if d < 1 {
		return fmt.Sprintf("%.3f", d)
	}
	return fmt.Sprintf("%.2f", d)
}

func fmtCPU(r *result) string {
	if r.ops == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", float64(r.cpuPerOp())/float64(time.Microsecond))
}

// cpuInfo returns the CPU model and the number of logical processors
// listed in /proc/cpuinfo.
func cpuInfo() (model string, cores int) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU", runtime.NumCPU()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cores++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	if model == "" {
		model = "unknown CPU"
	}
	return model, cores
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// depVersions lists the versions of the modules that matter here, as
// built into this binary.
func depVersions() []string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return []string{"build info unavailable"}
	}
	want := []string{
		"github.com/skiffkv/skiff",
		"github.com/hashicorp/raft",
		"github.com/hashicorp/raft-boltdb/v2",
		"github.com/hashicorp/raft-wal",
		"github.com/Jille/raft-grpc-transport",
		"github.com/hashicorp/go-metrics",
		"go.etcd.io/etcd/server/v3",
		"go.etcd.io/etcd/client/v3",
		"go.etcd.io/raft/v3",
		"go.etcd.io/bbolt",
		"google.golang.org/grpc",
		"google.golang.org/protobuf",
	}
	var out []string
	for _, w := range want {
		for _, d := range bi.Deps {
			if d.Path != w {
				continue
			}
			v := d.Version
			if d.Replace != nil {
				v += " => " + d.Replace.Path
				if d.Replace.Version != "" {
					v += " " + d.Replace.Version
				}
			}
			out = append(out, d.Path+" "+v)
		}
	}
	return out
}

// skiffCommit describes the skiff source built in (the parent directory),
// when git can tell.
func skiffCommit() string {
	rev, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(rev))
	// Changes under bench/ do not change what is measured.
	st, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench").Output()
	if err == nil && len(st) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// fsType names the file system holding path.
func fsType(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown file system"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs"
	case 0x858458f6:
		return "ramfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}
