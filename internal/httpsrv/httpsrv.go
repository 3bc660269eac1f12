// Package httpsrv is net/http's server as every HTTP service of the
// gateway runs it (the control API now; UPnP's descriptions and SOAP
// control and the web panel next): bounded header and body sizes, a
// timeout for every phase of a request, and a cap on open connections, so
// that a slow or huge request costs a bounded amount.
package httpsrv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound what one client can make the server hold. Zero values are
// documented per field.
type Limits struct {
	MaxHeaderBytes int   // request line and headers; zero is 8 KiB
	MaxBodyBytes   int64 // a larger body is refused with 413; zero is 64 KiB
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are
	// net/http's; zero is 5 s, 10 s, 10 s and 30 s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConns caps open connections; more wait in the listen queue.
	// Zero is 32.
	MaxConns int
}

func (l Limits) withDefaults() Limits {
	or := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = 8 << 10
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 64 << 10
	}
	or(&l.ReadHeaderTimeout, 5*time.Second)
	or(&l.ReadTimeout, 10*time.Second)
	or(&l.WriteTimeout, 10*time.Second)
	or(&l.IdleTimeout, 30*time.Second)
	if l.MaxConns == 0 {
		l.MaxConns = 32
	}
	return l
}

// shutdownWait bounds how long Serve waits for requests in flight.
const shutdownWait = 5 * time.Second

// Serve serves h on ln under l until ctx is done, then shuts down (waiting
// for requests in flight, 5 s at most) and returns. net/http recovers a
// panic in a handler and logs it (to log, at Error); the server goes on.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, l Limits, log *slog.Logger) error {
	l = l.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           limitBody(h, l.MaxBodyBytes),
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(netutil.LimitListener(ln, l.MaxConns)) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	srv.Shutdown(shut)
	srv.Close() // what did not finish in time
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitBody refuses a body over max: at once when its length is declared,
// else when reading passes it (the handler sees an error).
func limitBody(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		h.ServeHTTP(w, r)
	})
}
