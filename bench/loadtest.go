package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load test runs each system in a child process of its own, so that
// the resident set size it reports is that system's (three members and a
// client) and not what earlier systems left in this process's heap.

// loadResult is what a load-test child reports on stdout, as JSON.
type loadResult struct {
	System      string        `json:"system"`
	Keys        int           `json:"keys"`
	Batch       int           `json:"batch"`
	LoadTook    time.Duration `json:"load_took"`
	DiskPerNode int64         `json:"disk_per_node"`
	RSS         int64         `json:"rss"`
	Restart     time.Duration `json:"restart"`
	Open        time.Duration `json:"open"` // of Restart, reopening the member
	Tail        int64         `json:"tail"` // log entries past the stopped member's last snapshot; -1: n/a
	Err         string        `json:"err,omitempty"`
}

// batchPutter is implemented by systems whose API writes many keys in one
// request (etcd: a transaction; bare raft: one log entry). skiff's API
// has no multi-key write, so its load is single-key Put calls.
type batchPutter interface {
	putBatch(ctx context.Context, keys []string, value []byte) error
}

// runLoadChild re-executes this program to run the load test of kind.
func runLoadChild(ctx context.Context, kind systemKind, keys, batch int, dir string) loadResult {
	res := loadResult{System: string(kind), Keys: keys}
	exe, err := os.Executable()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	cmd := exec.CommandContext(ctx, exe, "-load-child", string(kind), "-v="+strconv.FormatBool(bool(logLevel)),
		"-load-keys", strconv.Itoa(keys), "-load-batch", strconv.Itoa(batch), "-dir", dir)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	runErr := cmd.Run()
	// The result is the last line; anything a library printed comes before.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		res.Err = fmt.Sprintf("load test of %s: %v (output %q)", kind, runErr, out.String())
	}
	return res
}

// loadChild is the child's side: start kind fresh, load keys, measure,
// restart a follower, and print the result.
func loadChild(kind systemKind, keys, batch int, dir string) {
	res := loadTest(kind, keys, batch, dir)
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

func loadTest(kind systemKind, keys, batch int, dir string) (res loadResult) {
	res = loadResult{System: string(kind), Keys: keys}
	fail := func(err error) loadResult {
		res.Err = err.Error()
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	base, err := os.MkdirTemp(dir, "skiff-bench-load-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(base)
	s, err := startSystem(ctx, kind, base)
	if err != nil {
		return fail(err)
	}
	defer s.close()

	if _, ok := s.(batchPutter); !ok {
		batch = 1
	}
	res.Batch = batch
	start := time.Now()
	if err := fill(ctx, s, keys, 256, batch); err != nil {
		return fail(err)
	}
	res.LoadTook = time.Since(start)

	// A sentinel written last: the restarted member has caught up when it
	// serves this value.
	sentinel := []byte(fmt.Sprintf("sentinel %d", time.Now().UnixNano()))
	if err := s.put(ctx, "bench/sentinel", sentinel); err != nil {
		return fail(fmt.Errorf("put sentinel: %w", err))
	}
	var total int64
	for _, d := range s.dirs() {
		n, err := dirSize(d)
		if err != nil {
			return fail(err)
		}
		total += n
	}
	res.DiskPerNode = total / int64(len(s.dirs()))
	res.RSS = rss()

	i, tail, err := s.stopFollower(ctx)
	if err != nil {
		return fail(fmt.Errorf("stop follower: %w", err))
	}
	res.Tail = tail
	t0 := time.Now()
	read, err := s.restartMember(ctx, i)
	if err != nil {
		return fail(fmt.Errorf("restart member: %w", err))
	}
	res.Open = time.Since(t0)
	err = poll(ctx, "first read after restart", func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		v, err := read(rctx, "bench/sentinel")
		return err == nil && bytes.Equal(v, sentinel)
	})
	if err != nil {
		return fail(err)
	}
	res.Restart = time.Since(t0)
	return res
}

// fill writes keys 0..n-1 with clients concurrent writers, batch keys per
// request where the system has multi-key writes.
func fill(ctx context.Context, s system, n, clients, batch int) error {
	bp, _ := s.(batchPutter)
	if bp == nil {
		batch = 1
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := newValue(rand.New(rand.NewPCG(uint64(w), 1)))
			keys := make([]string, 0, batch)
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= n {
					return
				}
				keys = keys[:0]
				for k := lo; k < min(lo+batch, n); k++ {
					keys = append(keys, keyName(k))
				}
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				var err error
				if bp != nil && batch > 1 {
					err = bp.putBatch(wctx, keys, value)
				} else {
					err = s.put(wctx, keys[0], value)
				}
				cancel()
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("fill %s: %w", keys[0], err)
					}
					errMu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// rss returns this process's resident set size in bytes, from
// /proc/self/status.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
