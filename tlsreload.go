package skiff

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of a TLS identity for ReloadingTLS.
type TLSFiles struct {
	// CertFile and KeyFile hold this side's certificate (its chain, leaf
	// first) and private key: a node's, which it serves and presents to
	// its peers, or a client's for mutual TLS. Both empty: no certificate
	// (a client of nodes that do not verify clients).
	CertFile, KeyFile string
	// CAFile holds the certificates of the CAs the other side's
	// certificate must chain to: for a node, those of its peers and
	// clients, and the node then requires and verifies client
	// certificates (mutual TLS, which Config.PeerNames needs); for a
	// client, those of the nodes. Empty: the system's roots, and a node
	// asks for no client certificate.
	CAFile string
	// Logger receives a warning when changed files cannot be loaded (the
	// previous ones stay in use). Nil means slog.Default().
	Logger *slog.Logger
}

// ReloadingTLS returns a TLS configuration that reads its certificate,
// key and CA from files, and reads them again when they change, so that
// certificates can be rotated without restarting anything. Use it for
// Config.TLS, Config.PeerTLS or a client's WithTLS; the same one serves
// a node's port and its dialing of peers.
//
// The files are looked at (a stat of each, a few microseconds) at every
// TLS handshake, and read again when one has changed (modification
// time, size, or a new file in its place, as when a directory of
// mounted secrets is swapped). A change thus applies from the next
// connection on; established connections keep the certificates they
// were made with. A rotation that writes the certificate and the key
// one after the other may be seen half done: a pair that does not load
// is not used, the previous one stays in use and a warning is logged,
// and the next handshake tries again. ReloadingTLS itself fails if the
// files cannot be loaded now.
//
// The certificate is re-read everywhere the configuration is used. A
// new CA takes effect for connections a node accepts and for those skiff
// dials (a node's peers, a Client); a program that uses the
// configuration for connections of its own verifies servers with the CA
// read when ReloadingTLS was called.
//
// The returned configuration may be adjusted (ClientAuth, MinVersion)
// before use, and must not be changed afterwards.
func ReloadingTLS(f TLSFiles) (*tls.Config, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%w: TLSFiles needs both CertFile and KeyFile, or neither", ErrConfig)
	}
	r := &tlsReloader{files: f, log: f.Logger}
	if r.log == nil {
		r.log = slog.Default()
	}
	id, err := r.current()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetCertificate:       r.serverCertificate,
		GetClientCertificate: r.clientCertificate,
		// The only field a clone carries that can say "this is a
		// reloading configuration" to skiff's dialer (see clientCreds).
		// It also turns off session resumption, which would skip the
		// check against a new CA.
		ClientSessionCache: reloadMarker{r},
	}
	if f.CAFile != "" {
		cfg.RootCAs, cfg.ClientCAs = id.pool, id.pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.serverConfig(cfg) }
	}
	return cfg, nil
}

// tlsReloader holds the identity last loaded from its files.
type tlsReloader struct {
	files TLSFiles
	log   *slog.Logger

	mu     sync.Mutex
	id     tlsIdentity
	stamps []os.FileInfo // of the files id was loaded from
	warned string        // the failure last logged, logged once
}

type tlsIdentity struct {
	cert *tls.Certificate // nil without CertFile
	pool *x509.CertPool   // nil without CAFile
}

// current returns the identity the files hold now, loading them again if
// they changed since the last load.
func (r *tlsReloader) current() (tlsIdentity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err == nil && r.stamps != nil && sameFiles(stamps, r.stamps) {
		return r.id, nil
	}
	var id tlsIdentity
	if err == nil {
		id, err = r.load()
	}
	if err != nil {
		if r.stamps == nil {
			return tlsIdentity{}, err // nothing loaded yet: nothing to fall back on
		}
		if err.Error() != r.warned {
			r.log.Warn("TLS files changed but cannot be loaded; still using the previous ones", "err", err)
			r.warned = err.Error()
		}
		return r.id, nil
	}
	r.id, r.stamps, r.warned = id, stamps, ""
	return id, nil
}

func (r *tlsReloader) paths() []string {
	var ps []string
	for _, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.CAFile} {
		if p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

func (r *tlsReloader) stat() ([]os.FileInfo, error) {
	var out []os.FileInfo
	for _, p := range r.paths() {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		out = append(out, fi)
	}
	return out, nil
}

func sameFiles(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

func (r *tlsReloader) load() (tlsIdentity, error) {
	var id tlsIdentity
	f := r.files
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return id, fmt.Errorf("tls: load %s and %s: %w", f.CertFile, f.KeyFile, err)
		}
		id.cert = &cert
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return id, fmt.Errorf("tls: %w", err)
		}
		id.pool = x509.NewCertPool()
		if !id.pool.AppendCertsFromPEM(pem) {
			return id, fmt.Errorf("tls: %s holds no PEM certificate", f.CAFile)
		}
	}
	return id, nil
}

func (r *tlsReloader) serverCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	id, err := r.current()
	if err != nil {
		return nil, err
	}
	if id.cert == nil {
		return nil, errors.New("tls: no certificate to serve (TLSFiles.CertFile is empty)")
	}
	return id.cert, nil
}

func (r *tlsReloader) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	id, err := r.current()
	if err != nil || id.cert == nil {
		return &tls.Certificate{}, err // none: the server decides whether that will do
	}
	return id.cert, nil
}

// serverConfig is the configuration of one connection a node accepts:
// base, with the clients' CAs as they are now.
func (r *tlsReloader) serverConfig(base *tls.Config) (*tls.Config, error) {
	id, err := r.current()
	if err != nil {
		return nil, err
	}
	c := base.Clone()
	c.GetConfigForClient = nil
	c.ClientCAs = id.pool
	return c, nil
}

// reloadMarker marks a configuration from ReloadingTLS; as a session
// cache it keeps nothing.
type reloadMarker struct{ r *tlsReloader }

func (reloadMarker) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (reloadMarker) Put(string, *tls.ClientSessionState)        {}

// clientCreds returns the gRPC credentials skiff dials with. A
// configuration from ReloadingTLS verifies each new connection's server
// against the CA as its file is now: tls.Config has no hook that would
// let it pick its roots per connection, so the configuration is cloned
// with them for each handshake.
func clientCreds(c *tls.Config) credentials.TransportCredentials {
	if m, ok := c.ClientSessionCache.(reloadMarker); ok && c.RootCAs != nil {
		return &reloadingCreds{TransportCredentials: credentials.NewTLS(c), base: c, r: m.r}
	}
	return credentials.NewTLS(c)
}

type reloadingCreds struct {
	credentials.TransportCredentials
	base *tls.Config
	r    *tlsReloader
}

func (c *reloadingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	id, err := c.r.current()
	if err != nil {
		return nil, nil, err
	}
	cfg := c.base.Clone()
	cfg.RootCAs = id.pool
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, conn)
}

func (c *reloadingCreds) Clone() credentials.TransportCredentials {
	return &reloadingCreds{TransportCredentials: c.TransportCredentials.Clone(), base: c.base, r: c.r}
}
