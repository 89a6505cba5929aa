package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/skiffkv/skiff"
)

// testDialer, when set, replaces the network for the client verbs; tests
// set it to reach an in-memory skifftest cluster.
var testDialer func(ctx context.Context, addr string) (net.Conn, error)

// Deadlines of the client verbs when --timeout is 0.
const (
	defaultTimeout = 10 * time.Second
	backupTimeout  = time.Hour // a backup of gigabytes takes minutes
)

// withTimeout bounds the command by --timeout, or by def when it is 0
// (no bound when def is 0 too).
func (e *env) withTimeout(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	d := e.common.timeout
	if d == 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// dial connects a client to --endpoints. The dial gives up within ctx's
// deadline (at most 5 s), so a verb against a dead cluster ends promptly
// with exit code 5; when TLS is what failed, the error says so (see
// explainTLS).
func (e *env) dial(ctx context.Context) (*skiff.Client, error) {
	addrs := splitList(e.common.endpoints)
	if len(addrs) == 0 {
		return nil, usagef("no endpoints: give --endpoints host:port[,host:port...] or set SKIFF_ENDPOINTS")
	}
	opts := []skiff.ClientOption{skiff.WithDialTimeout(5 * time.Second)}
	if dl, ok := ctx.Deadline(); ok {
		// Calls get ctx's deadline; this only bounds calls that make their
		// own contexts, such as listing pages.
		opts = append(opts, skiff.WithCallTimeout(max(time.Until(dl), time.Millisecond)))
	}
	tlsCfg, err := clientTLS(e.common.cacert, e.common.cert, e.common.key)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, skiff.WithTLS(tlsCfg))
	}
	if e.common.token != "" {
		opts = append(opts, skiff.WithToken(e.common.token))
	}
	if testDialer != nil {
		opts = append(opts, skiff.WithDialer(testDialer))
	}
	cl, err := skiff.Dial(ctx, addrs, opts...)
	if errors.Is(err, skiff.ErrUnavailable) {
		if why := explainTLS(ctx, addrs, tlsCfg); why != nil {
			return nil, why
		}
	}
	return cl, err
}

// clientTLS builds the client's TLS config from PEM files; nil when none
// is given.
func clientTLS(cacert, cert, key string) (*tls.Config, error) {
	if cacert == "" && cert == "" && key == "" {
		return nil, nil
	}
	return reloadingTLS(cert, key, cacert, "--cert", "--key", nil)
}

// reloadingTLS builds a TLS config from PEM files with
// skiff.ReloadingTLS, which reads them again when they change: a
// certificate and its key (both or neither, named by certFlag and
// keyFlag in errors), and a CA (empty: the system's roots). A file that
// cannot be read or parsed now is a usage error.
func reloadingTLS(cert, key, ca, certFlag, keyFlag string, logger *slog.Logger) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, usagef("%s and %s go together", certFlag, keyFlag)
	}
	cfg, err := skiff.ReloadingTLS(skiff.TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca, Logger: logger})
	if err != nil {
		return nil, usagef("%v", err)
	}
	return cfg, nil
}

// closeClient closes cl; its error changes nothing for the command.
func closeClient(cl *skiff.Client) { _ = cl.Close() }

// errorf wraps an error with the verb's context.
func errorf(verb string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", verb, err)
}
