package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdSystem is a three-member etcd cluster embedded in this process,
// driven through one clientv3 client with every member as an endpoint.
// etcd's defaults apply (fsync on, 100ms ticks, 1s election timeout).
type etcdSystem struct {
	base    string
	peers   []string // host:port of each member's peer URL
	clients []string // host:port of each member's client URL
	members []*embed.Etcd
	cl      *clientv3.Client
	local   []*clientv3.Client
	level   zap.AtomicLevel // of the members' shared logger
	logger  *zap.Logger
}

var _ system = (*etcdSystem)(nil)

func startEtcd(ctx context.Context, base string) (_ *etcdSystem, err error) {
	s := &etcdSystem{base: base, level: zap.NewAtomicLevelAt(logLevel.zap())}
	enc := zap.NewDevelopmentEncoderConfig()
	s.logger = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), s.level))
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	for range 3 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		c, err := freePort()
		if err != nil {
			return nil, err
		}
		s.peers = append(s.peers, p)
		s.clients = append(s.clients, c)
	}
	s.members = make([]*embed.Etcd, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		// Members block until a quorum is up, so start them together.
		go func() {
			e, err := embed.StartEtcd(s.config(i))
			if err == nil {
				s.members[i] = e
				err = waitReady(ctx, e)
			}
			errs <- err
		}()
	}
	for range 3 {
		if e := <-errs; e != nil && err == nil {
			err = fmt.Errorf("start etcd: %w", e)
		}
	}
	if err != nil {
		return nil, err
	}
	eps := make([]string, len(s.clients))
	for i, c := range s.clients {
		eps[i] = "http://" + c
	}
	if s.cl, err = newEtcdClient(eps); err != nil {
		return nil, err
	}
	// The first request waits for the connections and a leader.
	if _, err := s.cl.Get(ctx, "bench/warmup"); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *etcdSystem) config(i int) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = fmt.Sprintf("n%d", i+1)
	cfg.Dir = filepath.Join(s.base, cfg.Name)
	peer := url.URL{Scheme: "http", Host: s.peers[i]}
	client := url.URL{Scheme: "http", Host: s.clients[i]}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	var ic []string
	for j, p := range s.peers {
		ic = append(ic, fmt.Sprintf("n%d=http://%s", j+1, p))
	}
	cfg.InitialCluster = strings.Join(ic, ",")
	cfg.InitialClusterToken = "bench"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(s.logger.With(zap.String("member", cfg.Name)))
	return cfg
}

func waitReady(ctx context.Context, e *embed.Etcd) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newEtcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// Large enough for the load test's batches.
		MaxCallSendMsgSize: 64 << 20,
	})
}

func (s *etcdSystem) name() string     { return "etcd" }
func (s *etcdSystem) logStore() string { return "" }

func (s *etcdSystem) put(ctx context.Context, key string, value []byte) error {
	_, err := s.cl.Put(ctx, key, string(value))
	return err
}

// putBatch writes up to etcd's default limit of 128 operations in one
// transaction.
func (s *etcdSystem) putBatch(ctx context.Context, keys []string, value []byte) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, string(value))
	}
	_, err := s.cl.Txn(ctx).Then(ops...).Commit()
	return err
}

func (s *etcdSystem) get(ctx context.Context, key string) ([]byte, error) {
	return etcdValue(s.cl.Get(ctx, key))
}

func (s *etcdSystem) getStale(ctx context.Context, key string) ([]byte, error) {
	return etcdValue(s.cl.Get(ctx, key, clientv3.WithSerializable()))
}

func etcdValue(resp *clientv3.GetResponse, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, errNotFound
	}
	return resp.Kvs[0].Value, nil
}

func (s *etcdSystem) watch(ctx context.Context, prefix string, onPut func([]byte)) (func(), error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	ch := s.cl.Watch(ctx, prefix+"/", clientv3.WithPrefix())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range ch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					onPut(ev.Kv.Value)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

func (s *etcdSystem) stopFollower(ctx context.Context) (int, int64, error) {
	var leader *embed.Etcd
	for _, e := range s.members {
		if e.Server.Leader() == e.Server.MemberID() {
			leader = e
		}
	}
	if leader == nil {
		return 0, 0, errors.New("etcd: no leader")
	}
	for i, e := range s.members {
		if e != leader {
			want := leader.Server.AppliedIndex()
			if err := poll(ctx, "follower catching up", func() bool { return e.Server.AppliedIndex() >= want }); err != nil {
				return 0, 0, err
			}
			// Its listeners report being closed, and the others that
			// it is gone: expected from here on.
			s.level.SetLevel(zap.FatalLevel)
			e.Close()
			return i, -1, nil
		}
	}
	return 0, 0, errors.New("etcd: no follower")
}

func (s *etcdSystem) restartMember(ctx context.Context, i int) (func(context.Context, string) ([]byte, error), error) {
	e, err := embed.StartEtcd(s.config(i))
	if err != nil {
		return nil, err
	}
	s.members[i] = e
	if err := waitReady(ctx, e); err != nil {
		return nil, err
	}
	cl, err := newEtcdClient([]string{"http://" + s.clients[i]})
	if err != nil {
		return nil, err
	}
	s.local = append(s.local, cl)
	return func(ctx context.Context, key string) ([]byte, error) {
		return etcdValue(cl.Get(ctx, key, clientv3.WithSerializable()))
	}, nil
}

func (s *etcdSystem) dirs() []string {
	out := make([]string, len(s.peers))
	for i := range out {
		out[i] = filepath.Join(s.base, fmt.Sprintf("n%d", i+1))
	}
	return out
}

func (s *etcdSystem) close() error {
	s.level.SetLevel(zap.FatalLevel)
	var errs []error
	for _, cl := range append(s.local, s.cl) {
		if cl != nil {
			errs = append(errs, cl.Close())
		}
	}
	for i := len(s.members) - 1; i >= 0; i-- {
		if s.members[i] != nil {
			s.members[i].Close()
		}
	}
	return errors.Join(errs...)
}
