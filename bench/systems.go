package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap/zapcore"
)

// system is one three-node cluster under test, driven the way its users
// drive it. Every method may be called from many goroutines at once.
type system interface {
	// name is the row label, e.g. "skiff (wal)".
	name() string
	// logStore is "boltdb" or "wal" for the Raft-based systems and "" for
	// etcd; skiff rows are compared with the bare-raft row of the same
	// store.
	logStore() string
	put(ctx context.Context, key string, value []byte) error
	// get is a linearizable read; getStale may be served from any
	// member's local state (etcd: a serializable read).
	get(ctx context.Context, key string) ([]byte, error)
	getStale(ctx context.Context, key string) ([]byte, error)
	// watch calls onPut with the value of every put below prefix until
	// stop is called. It returns errNoWatch when the system has none.
	watch(ctx context.Context, prefix string, onPut func(value []byte)) (stop func(), err error)
	// stopFollower waits until a follower has applied everything the
	// leader has, closes it and returns its index and the number of log
	// entries past its last snapshot, which a restart replays (-1 where
	// that does not apply: etcd's state is on disk).
	// The system's logs are quiet from then on: the other members report
	// the lost peer until they reconnect.
	stopFollower(ctx context.Context) (i int, tail int64, err error)
	// restartMember opens member i again on its data dir and returns a
	// read served by that member alone from its local state.
	restartMember(ctx context.Context, i int) (readLocal func(ctx context.Context, key string) ([]byte, error), err error)
	// dirs lists the members' data dirs.
	dirs() []string
	close() error
}

// verbosity is how much the systems log to stderr.
type verbosity bool

// logLevel is set by -v: info logs, not only errors.
var logLevel verbosity

func (v verbosity) slog() slog.Level {
	if v {
		return slog.LevelInfo
	}
	return slog.LevelError
}

func (v verbosity) hclog() hclog.Level {
	if v {
		return hclog.Info
	}
	return hclog.Error
}

func (v verbosity) zap() zapcore.Level {
	if v {
		return zapcore.InfoLevel
	}
	return zapcore.ErrorLevel
}

var errNoWatch = errors.New("watch not available")

// errNotFound is what get returns for a missing key, whatever the system.
var errNotFound = errors.New("key not found")

// systemKind names a system the program can start.
type systemKind string

const (
	kindSkiffBolt systemKind = "skiff-boltdb"
	kindSkiffWAL  systemKind = "skiff-wal"
	kindEtcd      systemKind = "etcd"
	kindRaftBolt  systemKind = "raft-boltdb"
	kindRaftWAL   systemKind = "raft-wal"
)

// allKinds is the order systems are started and reported in.
var allKinds = []systemKind{kindSkiffBolt, kindSkiffWAL, kindEtcd, kindRaftBolt, kindRaftWAL}

// startSystem starts a fresh three-node cluster of kind with its data dirs
// below base, and returns once it has a leader and a connected client.
func startSystem(ctx context.Context, kind systemKind, base string) (system, error) {
	dir := filepath.Join(base, string(kind))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var (
		s   system
		err error
	)
	// Each case assigns through err so that a failed start leaves s a nil
	// interface, not one holding a nil pointer.
	switch kind {
	case kindSkiffBolt, kindSkiffWAL:
		var x *skiffSystem
		if x, err = startSkiff(ctx, dir, strings.TrimPrefix(string(kind), "skiff-")); err == nil {
			s = x
		}
	case kindEtcd:
		var x *etcdSystem
		if x, err = startEtcd(ctx, dir); err == nil {
			s = x
		}
	case kindRaftBolt, kindRaftWAL:
		var x *raftSystem
		if x, err = startRaft(ctx, dir, strings.TrimPrefix(string(kind), "raft-")); err == nil {
			s = x
		}
	default:
		err = fmt.Errorf("unknown system %q", kind)
	}
	return s, err
}

func parseKinds(s string) ([]systemKind, error) {
	if s == "" || s == "all" {
		return allKinds, nil
	}
	var out []systemKind
	for _, f := range strings.Split(s, ",") {
		k := systemKind(strings.TrimSpace(f))
		found := false
		for _, a := range allKinds {
			found = found || a == k
		}
		if !found {
			return nil, fmt.Errorf("unknown system %q (want one of %v)", k, allKinds)
		}
		out = append(out, k)
	}
	return out, nil
}

// freePort returns a loopback address with a port that was free a moment
// ago, for servers that take URLs rather than listeners. It picks below
// the kernel's ephemeral range, so that the listeners on port 0 and the
// outgoing connections of the systems starting meanwhile cannot take it.
func freePort() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free port below the ephemeral range")
}

// poll calls f every few milliseconds until it reports done or ctx ends.
func poll(ctx context.Context, what string, f func() bool) error {
	for !f() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// dirSize is the total size of the regular files below dir, in bytes as
// allocated on disk (preallocated WAL segments count fully, as they
// occupy the disk).
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += allocated(fi)
		return nil
	})
	return total, err
}

func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
