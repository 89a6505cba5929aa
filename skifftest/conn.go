package skifftest

import (
	"net"
	"sync"
)

// faultConn is a gRPC connection dialed by from (a node, or Clients) to
// node to. Writes travel from→to and reads to→from; each direction meets
// its own faults. A byte stream cannot lose bytes without breaking, so a
// cut direction stalls until it heals (as TCP retransmits into a
// blackhole) and a dropped write is delivered DropRetransmit late. A link
// cut both ways closes the connection.
type faultConn struct {
	net.Conn
	net      *network
	from, to int

	once   sync.Once
	closed chan struct{}
}

func (c *faultConn) Write(p []byte) (int, error) {
	if err := c.pass(c.from, c.to); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Read returns what arrived, once the direction to→from lets it through.
func (c *faultConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if perr := c.pass(c.to, c.from); perr != nil {
			return 0, perr
		}
	}
	return n, err
}

// pass holds a message from→to for as long as the network says.
func (c *faultConn) pass(from, to int) error {
	if !c.net.waitUncut(from, to, c.closed) {
		return net.ErrClosed
	}
	lost, delay := c.net.message(from, to)
	if lost {
		delay += DropRetransmit
	}
	if !sleep(delay, c.closed) {
		return net.ErrClosed
	}
	return nil
}

// closeInner closes the connection underneath, failing its calls in
// flight; the network calls it with its lock held.
func (c *faultConn) closeInner() {
	c.once.Do(func() { close(c.closed) })
	c.Conn.Close()
}

func (c *faultConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	c.net.mu.Lock()
	delete(c.net.conns, c)
	c.net.mu.Unlock()
	return c.Conn.Close()
}
