package skiff

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// Client talks to a skiff cluster over the network. It implements KV with
// the same behaviour and errors as an embedded Node, plus membership.
//
// A Client keeps a connection to each node it knows, learns which node
// leads from the cluster's answers and sends writes and linearizable reads
// straight to it, and moves to another node when one fails. It retries
// reads freely, and writes only when the write certainly did not take
// effect; a write whose outcome is unknown fails with ErrIndeterminate and
// is never repeated behind the caller's back.
//
// All methods are safe for concurrent use. Every call takes its deadline
// from its context, or the Client's call timeout when the context has
// none.
type Client struct {
	opts  clientOptions
	seeds []string
	pool  *connPool

	mu     sync.Mutex
	leader string // address of the last known leader, "" if unknown
	next   int    // round-robin start for reads that need no leader
	closed bool

	batchers [3]*batcher // by batchKind
}

var _ KV = (*Client)(nil)

type clientOptions struct {
	tls         *tls.Config
	dialer      func(context.Context, string) (net.Conn, error)
	dialTimeout time.Duration
	callTimeout time.Duration
	stale       bool
	maxMsg      int
	token       string
}

// ClientOption configures Dial.
type ClientOption func(*clientOptions)

// WithTLS dials the nodes with TLS (set Certificates for mutual TLS).
func WithTLS(cfg *tls.Config) ClientOption { return func(o *clientOptions) { o.tls = cfg } }

// WithToken authenticates the client with a bearer token, which the nodes
// map to a role (Config.ClientTokens). Without TLS the token crosses the
// network in clear.
func WithToken(token string) ClientOption { return func(o *clientOptions) { o.token = token } }

// WithDialer replaces the network dialer, for example to reach a
// skifftest cluster.
func WithDialer(d func(ctx context.Context, addr string) (net.Conn, error)) ClientOption {
	return func(o *clientOptions) { o.dialer = d }
}

// WithDialTimeout bounds how long Dial waits to reach a first node
// (default 5s; Dial's context may end it sooner).
func WithDialTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.dialTimeout = d }
}

// WithCallTimeout is the deadline of calls whose context has none (default
// 10s).
func WithCallTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.callTimeout = d }
}

// WithStaleReads makes every read stale, as if each passed Stale(): served
// by any node from its local state, without a round trip to the leader.
func WithStaleReads() ClientOption { return func(o *clientOptions) { o.stale = true } }

// WithMaxMessageSize sets the largest message the client sends or
// receives (default 65 MiB: one maximal key and value, which every node
// accepts too). Lowering it makes calls with values near the limit fail.
func WithMaxMessageSize(n int) ClientOption { return func(o *clientOptions) { o.maxMsg = n } }

// Dial connects to a cluster through any of addrs (more addresses give
// more places to fail over to; nodes found later as leaders are added).
// It returns once one node has answered, or fails with an error wrapping
// ErrUnavailable when none does within the dial timeout.
func Dial(ctx context.Context, addrs []string, opts ...ClientOption) (*Client, error) {
	o := clientOptions{dialTimeout: 5 * time.Second, callTimeout: defaultTimeout, maxMsg: wireMessageLimit}
	for _, opt := range opts {
		opt(&o)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: Dial needs at least one address", ErrInvalidArgument)
	}
	dopts := dialOptions(o.tls, o.dialer, o.maxMsg)
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenCreds(o.token)))
	}
	c := &Client{opts: o, seeds: append([]string(nil), addrs...), pool: newConnPool(dopts)}
	for k := range c.batchers {
		c.batchers[k] = &batcher{c: c, kind: batchKind(k)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	defer cancel()
	if err := c.refreshLeader(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every connection. Calls in flight fail; later calls return
// ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.pool.close()
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) { return c.pool.get(addr) }

// candidates returns the addresses to try, in order: the leader first when
// wanted and known, then the others starting at a rotating position.
func (c *Client) candidates(preferLeader bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if preferLeader {
		add(c.leader)
	}
	c.next++
	for i := range c.seeds {
		add(c.seeds[(c.next+i)%len(c.seeds)])
	}
	add(c.leader)
	return out
}

func (c *Client) setLeader(addr string) {
	if addr == "" {
		return
	}
	c.mu.Lock()
	c.leader = addr
	c.mu.Unlock()
}

func (c *Client) forgetLeader(addr string) {
	c.mu.Lock()
	if c.leader == addr {
		c.leader = ""
	}
	c.mu.Unlock()
}

// refreshLeader asks the nodes, in turn, who leads.
func (c *Client) refreshLeader(ctx context.Context) error {
	var last error = ErrUnavailable
	for _, addr := range c.candidates(false) {
		cc, err := c.conn(addr)
		if err != nil {
			return err
		}
		if !ready(ctx, cc) {
			last = unreachable(ctx, addr, cc)
			continue
		}
		st, err := skiffpb.NewClusterClient(cc).Status(ctx, &skiffpb.StatusRequest{})
		if err != nil {
			if last = fromStatus(err); errors.Is(last, ErrPermissionDenied) {
				return last // every node would say the same
			}
			continue
		}
		c.setLeader(st.LeaderAddress)
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, ctxError(ctx, "reaching a node"))
	}
	if errors.Is(last, ErrUnavailable) {
		return fmt.Errorf("no node answered: %w", last)
	}
	return fmt.Errorf("%w: no node answered: %w", ErrUnavailable, last)
}

func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.callTimeout)
}

// read runs a read on a node, moving to the next one while attempts fail
// for reasons that say nothing about the answer. Linearizable reads go to
// the leader first (it answers without a hop); stale reads to any node.
// call learns the node's address, for reads that must come back to it.
func (c *Client) read(ctx context.Context, stale bool, call func(ctx context.Context, addr string, cc *grpc.ClientConn) error) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.attempts(ctx, !stale, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		// A node that cannot reach a quorum keeps a read waiting until
		// its deadline; give each attempt part of the time so another
		// node gets a chance.
		actx, acancel := context.WithTimeout(ctx, attemptTimeout(ctx))
		defer acancel()
		err := fromStatus(call(actx, addr, cc))
		if err == nil {
			return true, nil
		}
		return ctx.Err() == nil && (retryable(err) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed)), err
	})
}

func attemptTimeout(ctx context.Context) time.Duration {
	rest := time.Until(deadline(ctx))
	return max(min(rest/2, 3*time.Second), min(rest, 500*time.Millisecond))
}

// attempts calls try on nodes until it reports done, or that the error is
// final, or every node was tried; then it starts over after a pause, until
// ctx ends. try returns (true, nil) on success and (retry, err) otherwise.
func (c *Client) attempts(ctx context.Context, preferLeader bool,
	try func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error)) error {
	pause := 20 * time.Millisecond
	var last error
	for {
		for _, addr := range c.candidates(preferLeader) {
			cc, err := c.conn(addr)
			if err != nil {
				return err
			}
			if !ready(ctx, cc) {
				c.forgetLeader(addr)
				last = unreachable(ctx, addr, cc)
				if ctx.Err() != nil {
					break
				}
				continue
			}
			ok, err := try(ctx, addr, cc)
			if err == nil {
				return nil
			}
			last = err
			if hint := leaderHint(err); hint != "" && hint != addr {
				c.setLeader(hint)
			} else if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnavailable) {
				c.forgetLeader(addr)
			}
			if !ok {
				return err
			}
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(last, ErrIndeterminate) || isSkiffError(last) && !retryable(last) && !errors.Is(last, ErrUnavailable) {
				return last
			}
			return fmt.Errorf("%w: %w (last error: %v)", ErrUnavailable, ctxError(ctx, "reaching the cluster"), last)
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

func (c *Client) readOptions(opts []ReadOption) (readOptions, *skiffpb.ReadOptions, error) {
	o, err := collectReadOptions(opts)
	if err != nil {
		return o, nil, err
	}
	o.stale = o.stale || c.opts.stale
	return o, &skiffpb.ReadOptions{Stale: o.stale}, nil
}

// Put sets key to value and returns the revision of the write.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value})
}

// Create sets key only if it does not exist; otherwise ErrExists.
func (c *Client) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value, Condition: &skiffpb.Condition{Kind: skiffpb.Condition_ABSENT}})
}

// CompareAndSwap sets key only if its ModRevision is modRevision;
// otherwise ErrRevisionMismatch.
func (c *Client) CompareAndSwap(ctx context.Context, key string, value []byte, modRevision uint64) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value,
		Condition: &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION, ModRevision: modRevision}})
}

func (c *Client) put(ctx context.Context, req *skiffpb.PutRequest) (uint64, error) {
	res, err := c.batchOp(ctx, batchWrites, &skiffpb.Op{Op: &skiffpb.Op_Put{Put: req}})
	if err != nil {
		return 0, err
	}
	return res.GetPut().GetKv().GetModRevision(), nil
}

// Delete removes key. Deleting an absent key succeeds.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.del(ctx, &skiffpb.DeleteRequest{Key: key})
}

// DeleteIf removes key only if its ModRevision is modRevision; otherwise
// ErrRevisionMismatch.
func (c *Client) DeleteIf(ctx context.Context, key string, modRevision uint64) error {
	return c.del(ctx, &skiffpb.DeleteRequest{Key: key,
		Condition: &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION, ModRevision: modRevision}})
}

func (c *Client) del(ctx context.Context, req *skiffpb.DeleteRequest) error {
	_, err := c.batchOp(ctx, batchWrites, &skiffpb.Op{Op: &skiffpb.Op_Delete{Delete: req}})
	return err
}

// Get returns key's value and revisions, or ErrNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (*KeyValue, error) {
	o, ro, err := c.readOptions(opts)
	if err != nil {
		return nil, err
	}
	kind := batchReads
	if o.stale {
		kind = batchStale
	}
	res, err := c.batchOp(ctx, kind, &skiffpb.Op{Op: &skiffpb.Op_Get{Get: &skiffpb.GetRequest{Key: key, Options: ro}}})
	if err != nil {
		return nil, err
	}
	return kvFromPB(res.GetGet().GetKv()), nil
}

func kvFromPB(kv *skiffpb.KeyValue) *KeyValue {
	out := &KeyValue{Key: kv.GetKey(), Value: kv.GetValue(), CreateRevision: kv.GetCreateRevision(),
		ModRevision: kv.GetModRevision(), Version: kv.GetVersion()}
	if out.Value == nil {
		out.Value = []byte{}
	}
	return out
}
