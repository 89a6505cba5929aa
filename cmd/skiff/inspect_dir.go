package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/command"
)

// A node's data dir, as skiff lays it out (datadir.go and logstore.go in
// the root package): node-id, applied-index, raft.db or wal/, and
// snapshots/<id>/{meta.json,state.bin} written by Raft's file snapshot
// store, whose state.bin holds skiff's snapshot format.
const (
	idFile      = "node-id"
	appliedFile = "applied-index"
	boltFile    = "raft.db"
	walDir      = "wal"
	snapshotDir = "snapshots"
)

// dirJSON is what inspect reports about a data dir.
type dirJSON struct {
	Kind         string     `json:"kind"`
	Path         string     `json:"path"`
	NodeID       string     `json:"node_id,omitempty"`
	AppliedIndex uint64     `json:"applied_index,omitempty"`
	LogStore     string     `json:"log_store"`
	InUse        bool       `json:"in_use"` // a running node holds the log store; it was not read
	Term         uint64     `json:"term,omitempty"`
	VotedFor     string     `json:"voted_for,omitempty"`
	VoteTerm     uint64     `json:"vote_term,omitempty"`
	Log          *logJSON   `json:"log,omitempty"`
	Snapshots    []snapJSON `json:"snapshots"`
	Checksum     string     `json:"checksum"` // "ok", or the first damage found
}

// logJSON describes the Raft log.
type logJSON struct {
	First          uint64 `json:"first"`
	Last           uint64 `json:"last"`
	Commands       int    `json:"commands"`
	Configurations int    `json:"configurations"`
	Other          int    `json:"other"` // no-ops, barriers
	Checksum       string `json:"checksum"`
}

type snapJSON struct {
	ID      string   `json:"id"`
	Index   uint64   `json:"index"`
	Term    uint64   `json:"term"`
	Size    int64    `json:"size"`
	Members []string `json:"members"`
	viewJSON
}

// inspectDir reports on a data dir. Damage is reported, not returned
// early: every part that can be read is.
func inspectDir(e *env, dir string, keys bool) error {
	out := dirJSON{Kind: "data dir", Path: dir, Snapshots: []snapJSON{}}
	var damage []string
	note := func(err error) {
		if err != nil {
			damage = append(damage, err.Error())
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, idFile)); err == nil {
		out.NodeID = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, appliedFile)); err == nil {
		idx, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		out.AppliedIndex = idx
		if perr != nil {
			note(fmt.Errorf("%s: %v", appliedFile, perr))
		}
	}
	snaps, err := inspectSnapshots(dir, keys)
	out.Snapshots = append(out.Snapshots, snaps...)
	note(err)
	var snapIndex uint64
	if len(snaps) > 0 {
		snapIndex = snaps[0].Index
	}
	note(inspectLogStore(dir, snapIndex, &out))
	note(checkCoverage(out))
	if out.LogStore == "none" && len(out.Snapshots) == 0 && out.NodeID == "" {
		return usagef("inspect: %s is not a skiff data dir (no %s, %s, %s/ or %s/)", dir, idFile, boltFile, walDir, snapshotDir)
	}
	out.Checksum = "ok"
	if len(damage) > 0 {
		out.Checksum = strings.Join(damage, "; ")
	}
	if err := e.out.emit(out, func(w io.Writer) { printDir(w, out) }); err != nil {
		return err
	}
	if len(damage) > 0 {
		return fmt.Errorf("inspect %s: %w: %s", dir, errDamaged, out.Checksum)
	}
	return nil
}

// checkCoverage refuses what Open would: an applied index that neither
// the log nor the newest snapshot reaches (committed entries are gone).
func checkCoverage(d dirJSON) error {
	if d.InUse || d.AppliedIndex == 0 {
		return nil
	}
	reach := uint64(0)
	if d.Log != nil {
		reach = d.Log.Last
	}
	if len(d.Snapshots) > 0 {
		reach = max(reach, d.Snapshots[0].Index)
	}
	if d.AppliedIndex > reach {
		return fmt.Errorf("the node had applied index %d, but its log and snapshots end at %d", d.AppliedIndex, reach)
	}
	return nil
}

// inspectSnapshots reads every snapshot, newest first (the order Raft
// uses), checking Raft's CRC-64 and skiff's own format in one pass.
func inspectSnapshots(dir string, keys bool) ([]snapJSON, error) {
	root := filepath.Join(dir, snapshotDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []snapJSON
	var errs []error
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasSuffix(ent.Name(), ".tmp") {
			continue // a snapshot being written
		}
		s, err := inspectSnapshot(filepath.Join(root, ent.Name()))
		out = append(out, s)
		errs = append(errs, err)
	}
	slices.SortFunc(out, func(a, b snapJSON) int {
		if a.Term != b.Term {
			return cmpDesc(a.Term, b.Term)
		}
		if a.Index != b.Index {
			return cmpDesc(a.Index, b.Index)
		}
		return strings.Compare(b.ID, a.ID)
	})
	if keys && len(out) > 0 && out[0].Checksum == "ok" {
		// Read the newest once more for its keys, rather than hold every
		// snapshot's state in memory at once.
		f, err := os.Open(filepath.Join(root, out[0].ID, "state.bin"))
		if err == nil {
			v, _ := readState(f, true)
			out[0].KeyList = v.KeyList
			f.Close()
		}
	}
	return out, errors.Join(errs...)
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

func inspectSnapshot(dir string) (snapJSON, error) {
	s := snapJSON{ID: filepath.Base(dir), Members: []string{}}
	var meta struct {
		raft.SnapshotMeta
		CRC []byte
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(b, &meta)
	}
	if err != nil {
		s.Checksum = "metadata unreadable: " + err.Error()
		return s, fmt.Errorf("snapshot %s: metadata: %w", s.ID, err)
	}
	s.Index, s.Term, s.Size = meta.Index, meta.Term, meta.Size
	for _, srv := range meta.Configuration.Servers {
		s.Members = append(s.Members, fmt.Sprintf("%s=%s (%s)", srv.ID, srv.Address, srv.Suffrage))
	}
	f, err := os.Open(filepath.Join(dir, "state.bin"))
	if err != nil {
		s.Checksum = "unreadable: " + err.Error()
		return s, fmt.Errorf("snapshot %s: %w", s.ID, err)
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	s.viewJSON, err = readState(io.TeeReader(f, h), false)
	if err == nil && !slices.Equal(h.Sum(nil), meta.CRC) {
		s.Checksum = "state.bin does not match the CRC-64 in meta.json"
		err = errors.New(s.Checksum)
	}
	if err != nil {
		return s, fmt.Errorf("snapshot %s: %w", s.ID, err)
	}
	return s, nil
}

// logTally checks log entries as Open does (known types, commands whose
// checksums hold, consecutive indexes past the newest snapshot) and
// counts them. Entries up to the snapshot's index may be missing: a
// follower that installed a snapshot from its leader keeps the older
// entries it had, and never needs the ones between.
type logTally struct {
	logJSON
	snapIndex uint64
	problem   error
}

func (t *logTally) add(l *raft.Log) {
	if t.problem != nil {
		return
	}
	switch {
	case t.Last != 0 && l.Index <= t.Last:
		t.problem = fmt.Errorf("log entry %d follows entry %d", l.Index, t.Last)
		return
	case t.Last != 0 && l.Index != t.Last+1 && l.Index-1 > t.snapIndex:
		t.problem = fmt.Errorf("log entries %d to %d are missing", t.Last+1, l.Index-1)
		return
	case t.Last == 0 && t.snapIndex > 0 && l.Index > t.snapIndex+1:
		t.problem = fmt.Errorf("the log starts at entry %d, after the newest snapshot ends at %d", l.Index, t.snapIndex)
		return
	}
	if t.First == 0 {
		t.First = l.Index
	}
	t.Last = l.Index
	switch l.Type {
	case raft.LogCommand:
		t.Commands++
		if err := command.Verify(l.Data); err != nil {
			t.problem = fmt.Errorf("log entry %d: %w", l.Index, err)
		}
	case raft.LogConfiguration:
		t.Configurations++
	case raft.LogNoop, raft.LogBarrier, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated:
		t.Other++
	default:
		t.problem = fmt.Errorf("log entry %d has unknown type %d", l.Index, l.Type)
	}
}

func (t *logTally) result() (*logJSON, error) {
	t.Checksum = "ok"
	if t.problem != nil {
		t.Checksum = t.problem.Error()
	}
	return &t.logJSON, t.problem
}

// guarded runs f, a read of a log store that may be damaged, turning a
// panic (bbolt trusts its file; a fault on its memory map panics with
// SetPanicOnFault) into an error: bad input must not crash inspect.
func guarded(what string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: damaged: %v", what, r)
		}
	}()
	return f()
}

func printDir(w io.Writer, d dirJSON) {
	tw := table(w)
	fmt.Fprintf(tw, "data dir\t%s\n", d.Path)
	fmt.Fprintf(tw, "node id\t%s\n", orDash(d.NodeID))
	fmt.Fprintf(tw, "log store\t%s\n", d.LogStore)
	if d.InUse {
		fmt.Fprintf(tw, "in use\tyes: a running node holds the log store, which was not read\n")
	}
	if d.Term != 0 {
		fmt.Fprintf(tw, "term\t%d\n", d.Term)
	}
	if d.VotedFor != "" {
		fmt.Fprintf(tw, "vote\t%s in term %d\n", d.VotedFor, d.VoteTerm)
	}
	if l := d.Log; l != nil {
		fmt.Fprintf(tw, "log\t%s\n", logRange(l))
		fmt.Fprintf(tw, "log checksums\t%s\n", l.Checksum)
	}
	if d.AppliedIndex != 0 {
		fmt.Fprintf(tw, "applied index\t%d\n", d.AppliedIndex)
	}
	fmt.Fprintf(tw, "snapshots\t%d\n", len(d.Snapshots))
	for _, s := range d.Snapshots {
		fmt.Fprintf(tw, "  %s\tindex %d, term %d, %s\n", s.ID, s.Index, s.Term, humanBytes(s.Size))
		fmt.Fprintf(tw, "    members\t%s\n", strings.Join(s.Members, ", "))
		printView(tw, "    ", s.viewJSON)
	}
	fmt.Fprintf(tw, "verdict\t%s\n", d.Checksum)
	tw.Flush()
	if len(d.Snapshots) > 0 {
		printKeys(w, d.Snapshots[0].KeyList)
	}
}

func logRange(l *logJSON) string {
	if l.Last == 0 {
		return "empty"
	}
	return fmt.Sprintf("entries %d to %d: %d commands, %d configurations, %d other",
		l.First, l.Last, l.Commands, l.Configurations, l.Other)
}
