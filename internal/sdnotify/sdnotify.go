// Package sdnotify tells systemd about the service's state (sd_notify(3)) without cgo or a
// dependency: one datagram to $NOTIFY_SOCKET.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Ready tells systemd that start-up is finished (Type=notify units).
func Ready() error { return Send("READY=1") }

// Stopping tells systemd that a graceful stop has begun.
func Stopping() error { return Send("STOPPING=1") }

// Send sends state to $NOTIFY_SOCKET; without one (not under systemd) it does nothing.
func Send(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract namespace
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}
