// Package client speaks the daemon's JSON API over its control socket, for
// the CLI and the tests.
package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"gateway/web"
)

// Client sends requests to one control socket. It writes one HTTP/1.1
// request per connection and reads the answer with http.ReadResponse:
// net/http's Transport would add 0.4 MiB to a router binary for a job
// this small.
type Client struct {
	socket string
}

// New returns a client of the daemon listening on socket.
func New(socket string) *Client { return &Client{socket: socket} }

// Do sends a request with body (JSON-encoded unless nil) and decodes a JSON
// answer into out (if not nil). An error status comes back as an error
// with the API's message.
func (c *Client) Do(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	conn, err := net.DialTimeout("unix", c.socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("gateway: is the daemon running? %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, path, len(payload))
	if _, err := conn.Write(append([]byte(req), payload...)); err != nil {
		return fmt.Errorf("gateway: send to %s: %w", c.socket, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("gateway: answer from %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e web.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("gateway: %s", e.Error)
		}
		return fmt.Errorf("gateway: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
