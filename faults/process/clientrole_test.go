package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/faults"
)

// clientSpec configures the client process.
type clientSpec struct {
	Addrs   []string // every node
	Token   string
	Measure bool // write one key in a loop instead of running the workload
	// Workload: its seed and callers, and the file the history goes to.
	Seed    int64
	Clients int
	History string
	// Measure: each write's deadline.
	WriteTimeout time.Duration
}

// finalResult is what the client saw after the faults healed.
type finalResult struct {
	WriteOK  int64  // when the first write succeeded, in Unix nanoseconds
	WriteErr string `json:",omitempty"`
	Rev      uint64 // the final linearizable listing
	KVs      []faults.Entry
	ListErr  string `json:",omitempty"`
	// ListOp is the final listing as an operation of the history, by a
	// client of its own, so that the checker sees the state every write
	// must be explained by.
	ListOp *faults.Op `json:",omitempty"`
}

// writeRecord is one write of the measuring writer, in Unix nanoseconds
// (the test and the client share the machine's clock).
type writeRecord struct {
	Start, End int64
	Err        string `json:",omitempty"`
}

// Keys the client writes outside the workload's prefix.
const (
	probeKey   = "final/probe"
	measureKey = "measure/probe"
)

// runClient is the client role. Commands on standard input: "stop" ends
// the workload and writes the history, "final" runs the checks' reads and
// writes, "quit" (or the end of input) exits.
func runClient() int {
	var spec clientSpec
	if err := readSpec(&spec); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 2
	}
	cl, err := dial(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client: dial:", err)
		return 2
	}
	defer cl.Close()
	commands := make(chan string)
	go func() {
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			commands <- lines.Text()
		}
		close(commands)
	}()
	emit("ready", spec.Addrs)
	if spec.Measure {
		measureWrites(cl, spec.WriteTimeout, commands)
		return 0
	}
	if err := runWorkload(cl, spec, commands); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 2
	}
	return 0
}

func dial(spec clientSpec) (*skiff.Client, error) {
	return skiff.Dial(context.Background(), spec.Addrs, skiff.WithToken(spec.Token), skiff.WithDialTimeout(30*time.Second))
}

// runWorkload runs the workload until "stop", writes its history, and
// answers "final" with a finalResult. The workload's client is closed at
// "stop", which ends any write of it still on its way, and "final" uses
// a client of its own: a write whose caller has returned must not land
// after the final reads, which are to see the state the history left.
func runWorkload(cl *skiff.Client, spec clientSpec, commands <-chan string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := faults.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		faults.Workload{Seed: spec.Seed, Clients: spec.Clients}.Run(ctx, []skiff.KV{cl}, rec)
	}()
	for cmd := range commands {
		switch cmd {
		case "stop":
			cancel()
			<-done
			_ = cl.Close()
			ops := rec.Ops()
			if err := writeHistory(spec.History, ops); err != nil {
				return err
			}
			emit("stopped", len(ops))
		case "final":
			fresh, err := dial(spec)
			if err != nil {
				return fmt.Errorf("dial for the final reads: %w", err)
			}
			emit("final", finalReads(fresh, rec, spec.Clients))
			_ = fresh.Close()
		case "quit":
			return nil
		}
	}
	return errors.New("standard input ended")
}

func writeHistory(path string, ops []faults.Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finalReads writes until a write succeeds (that write also makes every
// entry before it committed or gone for good), then lists the workload's
// keys linearizably, recording the listing that succeeded on rec's clock
// as client id's.
func finalReads(cl *skiff.Client, rec *faults.Recorder, id int) finalResult {
	var res finalResult
	err := untilOK(20*time.Second, func(ctx context.Context) error {
		_, err := cl.Put(ctx, probeKey, []byte("after the faults"))
		return err
	})
	if err != nil {
		res.WriteErr = err.Error()
	} else {
		res.WriteOK = time.Now().UnixNano()
	}
	err = untilOK(10*time.Second, func(ctx context.Context) error {
		op := faults.Op{Client: id, Kind: faults.List, Outcome: faults.OK, Call: rec.Now()}
		l, err := cl.List(ctx, workloadPrefix)
		op.Return = rec.Now()
		if err == nil {
			res.Rev, res.KVs = l.Revision, nil
			for _, kv := range l.KVs {
				res.KVs = append(res.KVs, entryOf(kv))
			}
			op.Listed = res.KVs
			res.ListOp = &op
		}
		return err
	})
	if err != nil {
		res.ListErr = err.Error()
	}
	return res
}

// untilOK calls f, each call with a 3 s deadline, until it succeeds or
// limit has passed, and returns its last error. Calls start at least
// 50 ms apart, so that an error that comes back at once is not a busy
// loop.
func untilOK(limit time.Duration, f func(ctx context.Context) error) error {
	end := time.Now().Add(limit)
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(3*time.Second, time.Until(end)))
		err := f(ctx)
		cancel()
		if err == nil || time.Now().After(end) {
			return err
		}
		<-pace.C
	}
}

// measureWrites writes measureKey in a loop, one write at a time, each
// with its own deadline, and reports every write, until "quit". "leader"
// makes it ask the cluster who leads (which the client then remembers). A write
// starts at least 10 ms after the one before: that is the measurement's
// resolution, and keeps a fast-failing loop from filling the machine.
func measureWrites(cl *skiff.Client, timeout time.Duration, commands <-chan string) {
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for i := 0; ; i++ {
		select {
		case cmd := <-commands:
			if cmd != "leader" {
				return // "quit", or the end of input
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				id, _, err := cl.Leader(ctx)
				if err != nil {
					id = err.Error()
				}
				emit("leader", id)
			}()
			continue
		case <-pace.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		_, err := cl.Put(ctx, measureKey, []byte(strconv.Itoa(i)))
		rec := writeRecord{Start: start.UnixNano(), End: time.Now().UnixNano()}
		cancel()
		if err != nil {
			rec.Err = err.Error()
		}
		emit("w", rec)
	}
}
