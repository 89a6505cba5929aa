package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/skiffkv/skiff"
)

type memberJSON struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	ClientAddress string `json:"client_address,omitempty"`
	Voter         bool   `json:"voter"`
	Leader        bool   `json:"leader"`
}

func runMembers(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return clientVerb(ctx, e, fs, args, 0, 0, "no arguments", defaultTimeout, func(ctx context.Context, cl *skiff.Client, _ []string) error {
		ms, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		out := make([]memberJSON, len(ms))
		for i, m := range ms {
			out[i] = memberJSON(m)
		}
		return e.out.emit(struct {
			Members []memberJSON `json:"members"`
		}{out}, func(w io.Writer) {
			tw := table(w)
			fmt.Fprintln(tw, "ID\tADDRESS\tCLIENT ADDRESS\tVOTER\tLEADER")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, orDash(m.ClientAddress), yesNo(m.Voter), yesNo(m.Leader))
			}
			tw.Flush()
		})
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// done prints the outcome of a change that returns nothing.
func (e *env) done(what string) error {
	return e.out.emit(struct {
		OK bool `json:"ok"`
	}{true}, func(w io.Writer) { fmt.Fprintf(w, "OK %s\n", what) })
}

func runAddVoter(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return addMember(ctx, e, fs, args, true)
}

func runAddNonvoter(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return addMember(ctx, e, fs, args, false)
}

func addMember(ctx context.Context, e *env, fs *flag.FlagSet, args []string, voter bool) error {
	// AddVoter waits for the new member to catch up before promoting it,
	// which can take a while with a large state: give it time.
	return clientVerb(ctx, e, fs, args, 2, 2, "ID and ADDR", defaultTimeout*3, func(ctx context.Context, cl *skiff.Client, args []string) error {
		var err error
		if voter {
			err = cl.AddVoter(ctx, args[0], args[1])
		} else {
			err = cl.AddNonvoter(ctx, args[0], args[1])
		}
		if err != nil {
			return err
		}
		return e.done(fmt.Sprintf("added %s at %s", args[0], args[1]))
	})
}

func runRemove(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return clientVerb(ctx, e, fs, args, 1, 1, "ID", defaultTimeout, func(ctx context.Context, cl *skiff.Client, args []string) error {
		if err := cl.RemoveServer(ctx, args[0]); err != nil {
			return err
		}
		return e.done("removed " + args[0])
	})
}

func runTransfer(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	return clientVerb(ctx, e, fs, args, 0, 1, "an optional ID", defaultTimeout, func(ctx context.Context, cl *skiff.Client, args []string) error {
		target := firstOr(args, "")
		old, _, _ := cl.Leader(ctx)
		if err := cl.TransferLeadership(ctx, target); err != nil {
			return err
		}
		id := newLeader(ctx, cl, old, target)
		return e.out.emit(struct {
			OK     bool   `json:"ok"`
			Leader string `json:"leader,omitempty"`
		}{true, id}, func(w io.Writer) {
			if id == "" {
				fmt.Fprintln(w, "OK leadership moved")
				return
			}
			fmt.Fprintf(w, "OK leadership moved to %s\n", id)
		})
	})
}

// newLeader waits, briefly, for the cluster to name the leader a
// transfer made: target, or any but old when no target was given. The
// nodes learn it within a heartbeat or two, and until then the old
// leader may still name itself. It returns "" if none is named in time
// (the transfer itself succeeded all the same).
func newLeader(ctx context.Context, cl *skiff.Client, old, target string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		id, _, err := cl.Leader(ctx)
		if err == nil && (id == target || target == "" && id != old) {
			return id
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type statusJSON struct {
	Endpoint          string `json:"endpoint"`
	Error             string `json:"error,omitempty"`
	ID                string `json:"id,omitempty"`
	Address           string `json:"address,omitempty"`
	ClientAddress     string `json:"client_address,omitempty"`
	State             string `json:"state,omitempty"`
	LeaderID          string `json:"leader_id,omitempty"`
	LeaderAddress     string `json:"leader_address,omitempty"`
	Term              uint64 `json:"term,omitempty"`
	CommitIndex       uint64 `json:"commit_index,omitempty"`
	AppliedIndex      uint64 `json:"applied_index,omitempty"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index,omitempty"`
	Keys              int    `json:"keys"`
	Bytes             int64  `json:"bytes"`
}

// runStatus asks each endpoint (or ADDR) for its status at once, prints
// every answer, and fails (with the first failure's exit code) if any
// endpoint did not answer.
func runStatus(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	args, err := e.parseVerb(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("status", args, 0, 1, "an optional ADDR"); err != nil {
		return err
	}
	addrs := splitList(e.common.endpoints)
	if len(args) == 1 {
		addrs = args
		if e.common.endpoints == "" {
			e.common.endpoints = args[0]
		}
	}
	ctx, cancel := e.withTimeout(ctx, defaultTimeout)
	defer cancel()
	cl, err := e.dial(ctx)
	if err != nil {
		return errorf("status", err)
	}
	defer closeClient(cl)
	sts, errs := statuses(ctx, cl, addrs)
	var first error
	for i, st := range sts {
		if errs[i] != nil && first == nil {
			first = fmt.Errorf("%s: %w", addrs[i], errs[i])
		}
		if err := e.out.emit(st, func(w io.Writer) { printStatus(w, st) }); err != nil {
			return err
		}
	}
	return errorf("status", first)
}

func statuses(ctx context.Context, cl *skiff.Client, addrs []string) ([]statusJSON, []error) {
	sts, errs := make([]statusJSON, len(addrs)), make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			st, err := cl.Status(ctx, a)
			sts[i], errs[i] = statusJSON{Endpoint: a, ID: st.ID, Address: st.Address, ClientAddress: st.ClientAddress,
				State: st.State, LeaderID: st.LeaderID, LeaderAddress: st.LeaderAddress, Term: st.Term,
				CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastSnapshotIndex: st.LastSnapshotIndex,
				Keys: st.Keys, Bytes: st.Bytes}, err
			if err != nil {
				sts[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return sts, errs
}

func printStatus(w io.Writer, st statusJSON) {
	if st.Error != "" {
		fmt.Fprintf(w, "%s: %s\n", st.Endpoint, st.Error)
		return
	}
	fmt.Fprintf(w, "%s: %s %s, leader %s (%s), term %d\n", st.Endpoint, st.ID, st.State, orDash(st.LeaderID), orDash(st.LeaderAddress), st.Term)
	fmt.Fprintf(w, "  commit %d, applied %d, last snapshot %d; %d keys, %s\n",
		st.CommitIndex, st.AppliedIndex, st.LastSnapshotIndex, st.Keys, humanBytes(st.Bytes))
}
