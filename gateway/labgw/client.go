package labgw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"gateway/web"
)

// Client speaks a daemon's JSON API over its control socket.
//
// It stands in for gateway/client (being split out of the CLI, with the
// same Do); when that lands this becomes a use of it. It uses net/http's
// client, which the router binary avoids: labgw is never in it.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the daemon at socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}}
}

// Do sends a request with body (if not nil) as JSON and decodes a JSON
// answer into out (if not nil). An answer of 300 or more is an error that
// carries the API's message.
func (c *Client) Do(method, path string, body, out any) error {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://gateway"+path, payload)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("labgw: %s: is the daemon running? %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("labgw: answer from %s: %w", c.socket, err)
	}
	if resp.StatusCode >= 300 {
		var e web.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("labgw: %s", e.Error)
		}
		return fmt.Errorf("labgw: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
