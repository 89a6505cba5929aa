package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiffkv/skiff"
)

// skiffSystem is three skiff nodes in this process, the first bootstrapped
// and the others joined through it, driven through one network client.
type skiffSystem struct {
	store string
	cfgs  []skiff.Config
	nodes []*skiff.Node
	cl    *skiff.Client
	local []*skiff.Client // clients of restarted members, closed with s
	level *slog.LevelVar
}

var _ system = (*skiffSystem)(nil)

func startSkiff(ctx context.Context, base, store string) (_ *skiffSystem, err error) {
	s := &skiffSystem{store: store, level: new(slog.LevelVar)}
	s.level.Set(logLevel.slog())
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: s.level}))
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	for i := range 3 {
		cfg := skiff.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.Dir = filepath.Join(base, cfg.ID)
		cfg.BindAddr = "127.0.0.1:0"
		cfg.LogStore = skiff.LogStoreKind(store)
		cfg.Logger = logger
		if i > 0 {
			cfg.Join = []string{s.nodes[0].Addr()}
		}
		n, err := skiff.Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", cfg.ID, err)
		}
		cfg.BindAddr = n.Addr() // a restart must come back on the same port
		s.cfgs = append(s.cfgs, cfg)
		s.nodes = append(s.nodes, n)
		if i == 0 {
			if _, err := n.WaitForLeader(ctx); err != nil {
				return nil, err
			}
		}
	}
	if err := poll(ctx, "skiff cluster settling", s.settled); err != nil {
		return nil, err
	}
	addrs := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		addrs[i] = n.Addr()
	}
	if s.cl, err = skiff.Dial(ctx, addrs); err != nil {
		return nil, err
	}
	return s, nil
}

// settled reports whether every node knows the same leader and three
// voters.
func (s *skiffSystem) settled() bool {
	leader, _ := s.nodes[0].Leader()
	if leader == "" {
		return false
	}
	for _, n := range s.nodes {
		if id, _ := n.Leader(); id != leader {
			return false
		}
		ms, err := n.Members(context.Background())
		if err != nil || len(ms) != len(s.nodes) {
			return false
		}
		for _, m := range ms {
			if !m.Voter {
				return false
			}
		}
	}
	return true
}

func (s *skiffSystem) name() string     { return "skiff (" + s.store + ")" }
func (s *skiffSystem) logStore() string { return s.store }

func (s *skiffSystem) put(ctx context.Context, key string, value []byte) error {
	_, err := s.cl.Put(ctx, key, value)
	return err
}

func (s *skiffSystem) get(ctx context.Context, key string) ([]byte, error) {
	return skiffValue(s.cl.Get(ctx, key))
}

func (s *skiffSystem) getStale(ctx context.Context, key string) ([]byte, error) {
	return skiffValue(s.cl.Get(ctx, key, skiff.Stale()))
}

func skiffValue(kv *skiff.KeyValue, err error) ([]byte, error) {
	if errors.Is(err, skiff.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return kv.Value, nil
}

func (s *skiffSystem) watch(ctx context.Context, prefix string, onPut func([]byte)) (func(), error) {
	return skiffWatch(ctx, s.cl, prefix, onPut)
}

func (s *skiffSystem) stopFollower(ctx context.Context) (int, int64, error) {
	var leader *skiff.Node
	for _, n := range s.nodes {
		if n.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		return 0, 0, errors.New("skiff: no leader")
	}
	for i, n := range s.nodes {
		if n != leader {
			want := leader.Status().AppliedIndex
			if err := poll(ctx, "follower catching up", func() bool { return n.Status().AppliedIndex >= want }); err != nil {
				return 0, 0, err
			}
			st := n.Status()
			// The others log failed heartbeats to it while it is down
			// and after, until they reconnect: quiet from here on.
			s.level.Set(slog.LevelError + 4)
			return i, int64(st.AppliedIndex - min(st.LastSnapshotIndex, st.AppliedIndex)), n.Close()
		}
	}
	return 0, 0, errors.New("skiff: no follower")
}

func (s *skiffSystem) restartMember(ctx context.Context, i int) (func(context.Context, string) ([]byte, error), error) {
	n, err := skiff.Open(ctx, s.cfgs[i])
	if err != nil {
		return nil, err
	}
	s.nodes[i] = n
	cl, err := skiff.Dial(ctx, []string{n.Addr()}, skiff.WithStaleReads())
	if err != nil {
		return nil, err
	}
	s.local = append(s.local, cl)
	return func(ctx context.Context, key string) ([]byte, error) {
		return skiffValue(cl.Get(ctx, key))
	}, nil
}

func (s *skiffSystem) dirs() []string {
	out := make([]string, len(s.cfgs))
	for i, c := range s.cfgs {
		out[i] = c.Dir
	}
	return out
}

func (s *skiffSystem) close() error {
	// Nodes closed last log failed heartbeats to those closed first.
	s.level.Set(slog.LevelError + 4)
	var errs []error
	for _, cl := range append(s.local, s.cl) {
		if cl != nil {
			errs = append(errs, cl.Close())
		}
	}
	for i := len(s.nodes) - 1; i >= 0; i-- {
		errs = append(errs, s.nodes[i].Close())
	}
	return errors.Join(errs...)
}
