package pd

import "time"

// retrans holds the retransmission parameters of one message type, RFC
// 8415 section 15 (IRT, MRT, MRC; MRD is given per exchange, since Renew
// and Rebind end at T2 and at the end of the valid lifetime).
type retrans struct {
	IRT, MRT time.Duration
	MRC      int // 0: no limit
}

// The constants of RFC 8415 section 7.6.
var (
	solicitRT = retrans{IRT: time.Second, MRT: 3600 * time.Second}
	requestRT = retrans{IRT: time.Second, MRT: 30 * time.Second, MRC: 10}
	renewRT   = retrans{IRT: 10 * time.Second, MRT: 600 * time.Second}
	rebindRT  = retrans{IRT: 10 * time.Second, MRT: 600 * time.Second}
	releaseRT = retrans{IRT: time.Second, MRC: 4}
)

// backoff yields the retransmission timeouts of one exchange: RT = IRT +
// RAND*IRT first, then RT = 2*RTprev + RAND*RTprev, capped to MRT + RAND*MRT
// (RFC 8415 section 15). rnd returns RAND, uniform in [-0.1, 0.1].
type backoff struct {
	p     retrans
	rnd   func() float64
	first bool // the first RT of a Solicit: RAND is strictly greater than 0
	rt    time.Duration
	sent  int
}

// next returns the timeout after the next transmission, and false when
// MRC transmissions have been made.
func (b *backoff) next() (time.Duration, bool) {
	if b.p.MRC > 0 && b.sent >= b.p.MRC {
		return 0, false
	}
	r := b.rnd()
	if b.sent == 0 {
		if b.first && r <= 0 {
			r = -r
			if r == 0 {
				r = 0.05
			}
		}
		b.rt = b.p.IRT + time.Duration(r*float64(b.p.IRT))
	} else {
		b.rt = 2*b.rt + time.Duration(r*float64(b.rt))
		if b.p.MRT > 0 && b.rt > b.p.MRT {
			b.rt = b.p.MRT + time.Duration(r*float64(b.p.MRT))
		}
	}
	b.sent++
	return b.rt, true
}
