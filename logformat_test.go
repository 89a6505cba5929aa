package skiff_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// untar extracts a .tar.gz into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(path, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err == nil {
			err = os.WriteFile(path, b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Data dirs written before the log had its own checksummed format (format
// 1: a format byte and a protobuf message) open with every key, value
// and revision they had, and take new writes in the new format.
func TestOpensFormatV1DataDirs(t *testing.T) {
	root := t.TempDir()
	untar(t, "testdata/golden-v1.tar.gz", root)
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			var want skiff.ListResult
			b, err := os.ReadFile(filepath.Join(root, "v1-"+string(store)+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(filepath.Join(root, "v1-"+string(store)))
			n := openNode(t, cfg)
			ctx := testCtx(t)
			got, err := n.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.KVs, want.KVs) {
				t.Fatalf("List after opening a format 1 dir:\n got %+v\nwant %+v", got.KVs, want.KVs)
			}
			rev, err := n.Put(ctx, "written/later", []byte("format 2"))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			n = openNode(t, cfg)
			kv, err := n.Get(ctx, "written/later")
			if err != nil || kv.ModRevision != rev {
				t.Fatalf("Get(written/later) after reopening = %+v, %v", kv, err)
			}
			checkAll(t, n, map[string]string{"users/alice": "owner", "unicode/héllo/世界": "ünïcode"})
		})
	}
}

// writeAndClose writes keys k000..k(n-1) with values that name the key,
// then closes the node, leaving every entry in the log (no snapshot).
func writeAndClose(t *testing.T, cfg skiff.Config, count int) {
	t.Helper()
	n := openNode(t, cfg)
	putAll(t, n, "k", count)
	for i := 0; i < count; i++ {
		if _, err := n.Put(testCtx(t), fmt.Sprintf("marked/%03d", i), []byte(fmt.Sprintf("VALUE-MARKER-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// logFiles returns the files holding the log of a closed node.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return append(files, filepath.Join(dir, "raft.db"))
}

// flipIn flips one bit in the middle of every copy of marker in the log
// files of dir (bbolt leaves stale copies in pages it has freed).
func flipIn(t *testing.T, dir, marker string) {
	t.Helper()
	found := false
	for _, path := range logFiles(t, dir) {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for i := 0; ; {
			j := bytes.Index(b[i:], []byte(marker))
			if j < 0 {
				break
			}
			found = true
			b[i+j+len(marker)/2] ^= 0x04
			i += j + len(marker)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%q is in no log file of %s", marker, dir)
	}
}

// A bit flipped in a log entry used to be served as data (a changed
// value, a key under another name) or to drop an acknowledged write.
// Every command entry now carries a checksum: the node refuses to open
// and names the entry.
func TestDamagedLogEntryIsRefused(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.LogStore = store
			writeAndClose(t, cfg, 20)
			flipIn(t, cfg.Dir, "VALUE-MARKER-007")
			_, err := skiff.Open(testCtx(t), cfg)
			if !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), "log entry") {
				t.Fatalf("Open with a damaged entry: err = %v, want ErrCorrupt naming the entry", err)
			}
			t.Logf("Open: %v", err)
		})
	}
}

// deleteTail removes the last count entries from a closed node's log, as
// a truncated file or a lost tail would.
func deleteTail(t *testing.T, cfg skiff.Config, count uint64) {
	t.Helper()
	type tailStore interface {
		LastIndex() (uint64, error)
		DeleteRange(min, max uint64) error
		Close() error
	}
	var s tailStore
	var err error
	if cfg.LogStore == skiff.LogStoreWAL {
		s, err = raftwal.Open(filepath.Join(cfg.Dir, "wal"))
	} else {
		s, err = raftboltdb.NewBoltStore(filepath.Join(cfg.Dir, "raft.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err == nil {
		err = s.DeleteRange(last-count+1, last)
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A log that ends before the applied index the node recorded has lost
// committed entries. It used to open with the older state and serve it;
// now Open refuses it.
func TestShortenedLogIsRefused(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.LogStore = store
			writeAndClose(t, cfg, 25)
			deleteTail(t, cfg, 10)
			_, err := skiff.Open(testCtx(t), cfg)
			if !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), "committed entries are missing") {
				t.Fatalf("Open with a shortened log: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// A raft.db truncated to nothing opens as an empty database; the node
// used to bootstrap a new cluster of its own on top of its snapshot.
func TestEmptiedLogStoreIsRefused(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LogStore = skiff.LogStoreBolt
	n := openNode(t, cfg)
	putAll(t, n, "k", 10)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(cfg.Dir, "raft.db"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := skiff.Open(testCtx(t), cfg)
	if !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), "no Raft term") {
		t.Fatalf("Open with an emptied raft.db: err = %v, want ErrCorrupt", err)
	}
}

// A request's unknown fields used to reach the Raft log, since the
// received message was proposed as it was: 60 MiB of them went to every
// replica's disk, past the value limit and the quota. Commands are now
// built from the validated fields alone.
func TestUnknownFieldsStayOutOfTheLog(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	cc := rawConn(t, n.Addr())
	req, err := proto.Marshal(&skiffpb.PutRequest{Key: "k", Value: []byte("tiny")})
	if err != nil {
		t.Fatal(err)
	}
	req = protowire.AppendTag(req, 999, protowire.BytesType)
	req = protowire.AppendBytes(req, bytes.Repeat([]byte("x"), 1<<20))
	var resp rawMsg
	if err := cc.Invoke(testCtx(t), "/skiff.v1.KV/Put", &rawMsg{b: req}, &resp); err != nil {
		t.Fatal(err)
	}
	var put skiffpb.PutResponse
	if err := proto.Unmarshal(resp.b, &put); err != nil {
		t.Fatal(err)
	}
	data, err := skiff.LogEntryData(n, put.Kv.ModRevision)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 64 {
		t.Fatalf("the log entry of a 4-byte put holds %d bytes", len(data))
	}
	kv, err := n.Get(testCtx(t), "k")
	if err != nil || string(kv.Value) != "tiny" {
		t.Fatalf("Get(k) = %v, %v", kv, err)
	}
}

// An entry that reaches the state machine damaged stops the node: it
// applies neither that entry nor anything after it, reports ErrCorrupt
// naming the entry through Err and Done, and refuses to open again.
func TestDamagedEntryStopsARunningNode(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := openNode(t, cfg)
	putAll(t, n, "k", 5)
	idx, term := skiff.LastLog(n)
	damaged := []byte{2, 0, 0, 0, 0, 1, 1, 0, 1, 'k', 1, 'v'} // format 2, checksum 0
	cc := rawConn(t, n.Addr())
	// A leader of the next term sends the entry and says it is committed.
	req := &raftpb.AppendEntriesRequest{RpcHeader: header, Term: term + 1, Leader: []byte("127.0.0.1:1"),
		PrevLogEntry: idx, PrevLogTerm: term, LeaderCommitIndex: idx + 1,
		Entries: []*raftpb.Log{{Index: idx + 1, Term: term + 1, Type: raftpb.Log_LOG_COMMAND, Data: damaged}}}
	// The node may stop before it answers.
	if err := cc.Invoke(testCtx(t), "/RaftTransport/AppendEntries", req, new(rawMsg)); err != nil && status.Code(err) != codes.Unavailable {
		t.Fatal(err)
	}
	select {
	case <-n.Done():
	case <-testCtx(t).Done():
		t.Fatal("the node did not stop")
	}
	want := fmt.Sprintf("log entry %d", idx+1)
	if err := n.Err(); !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Err() = %v, want ErrCorrupt naming %s", err, want)
	}
	if _, err := n.Get(testCtx(t), "k/00000", skiff.Stale()); !errors.Is(err, skiff.ErrClosed) {
		t.Fatalf("Get on a stopped node: %v, want ErrClosed", err)
	}
	if _, err := skiff.Open(testCtx(t), cfg); !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open after the stop: err = %v, want ErrCorrupt naming %s", err, want)
	}
}
