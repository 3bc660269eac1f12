package nat44

import (
	"sync"
)

// feedQueue bounds what one subscriber may have pending; past it, events
// are dropped and the subscriber gets one Overflow event instead.
const feedQueue = 4096

// feed delivers the change events to subscribers, in order, without ever
// blocking the service: each subscriber has a bounded queue and a
// goroutine that hands events over.
type feed struct {
	mu     sync.Mutex // guards subs and closed
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	out  chan Event
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex // guards queue and lost
	queue []Event
	lost  int
}

// Subscribe returns the change feed: every Event from now on, in order,
// until cancel is called (or the service stops, which closes the
// channel). A subscriber that falls far behind gets an Overflow event in
// place of what it missed, and should re-read the tables.
func (n *NAT) Subscribe() (events <-chan Event, cancel func()) {
	return n.feed.subscribe()
}

func (f *feed) subscribe() (<-chan Event, func()) {
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		close(s.out)
		return s.out, func() {}
	}
	if f.subs == nil {
		f.subs = make(map[*subscriber]struct{})
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	go s.run()
	var once sync.Once
	return s.out, func() {
		once.Do(func() {
			f.mu.Lock()
			_, live := f.subs[s]
			delete(f.subs, s)
			f.mu.Unlock()
			if live { // else close has stopped it
				close(s.stop)
			}
			<-s.done
		})
	}
}

// publish queues e for every subscriber; it never blocks.
func (f *feed) publish(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.mu.Lock()
		if len(s.queue) < feedQueue && s.lost == 0 { // after a loss, nothing until the Overflow is out
			s.queue = append(s.queue, e)
		} else {
			s.lost++
		}
		s.mu.Unlock()
		signal(s.wake)
	}
}

// close ends every subscription: the service stopped.
func (f *feed) close() {
	f.mu.Lock()
	subs := f.subs
	f.subs, f.closed = nil, true
	f.mu.Unlock()
	for s := range subs {
		close(s.stop)
		<-s.done
	}
}

func (s *subscriber) run() {
	defer close(s.done)
	defer close(s.out)
	for {
		s.mu.Lock()
		var e Event
		have := len(s.queue) > 0
		if have {
			e = s.queue[0]
			s.queue = s.queue[1:]
		} else if s.lost > 0 {
			e, have = Event{Kind: Overflow, Lost: s.lost}, true
			s.lost = 0
		}
		s.mu.Unlock()
		if !have {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.out <- e:
		case <-s.stop:
			return
		}
	}
}
