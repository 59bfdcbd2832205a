package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// pollRequest is the body of a poll (RFC 8936 section 2.4).
type pollRequest struct {
	Ack               []string              `json:"ack,omitempty"`
	SetErrs           map[string]pollSetErr `json:"setErrs,omitempty"`
	MaxEvents         int                   `json:"maxEvents"`
	ReturnImmediately bool                  `json:"returnImmediately"`
}

type pollSetErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// pollResponse is the transmitter's answer (RFC 8936 section 2.5).
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// maxPollBackoff caps the wait after failed polls.
const maxPollBackoff = 5 * time.Minute

// poll asks the transmitter for SETs until ctx ends: it applies each,
// acknowledges the applied ones and reports the refused ones in the next
// request, polls again at once while the transmitter has more (or answers
// to send), waits PollInterval when it has none, and backs off
// exponentially (up to maxPollBackoff) while polls fail. A SET that could
// not be made durable is neither acknowledged nor refused: the transmitter
// delivers it again.
func (p *Provider) poll(ctx context.Context) {
	var (
		acks    []string
		errs    map[string]pollSetErr
		backoff = time.Second
	)
	for {
		res, err := p.pollOnce(ctx, acks, errs)
		wait := time.Duration(0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Warn("SSF poll failed; retrying", "err", err, "in", backoff)
			wait, backoff = backoff, min(2*backoff, maxPollBackoff)
		default:
			backoff = time.Second
			acks, errs = nil, nil
			transient := false
			for jti, raw := range res.Sets {
				var se *setError
				switch err := p.applySET(ctx, raw); {
				case errors.As(err, &se):
					p.log.Warn("security event token refused", "jti", jti, "err", err)
					if errs == nil {
						errs = map[string]pollSetErr{}
					}
					errs[jti] = pollSetErr{Err: se.code, Description: se.err.Error()}
				case err != nil:
					p.log.Error("security event token not applied; it will be polled again", "jti", jti, "err", err)
					transient = true
				default:
					acks = append(acks, jti)
				}
			}
			switch {
			case transient:
				wait = time.Second
			case !res.MoreAvailable && len(acks) == 0 && len(errs) == 0:
				wait = p.cfg.PollInterval
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// pollOnce sends one poll request carrying acks and errs.
func (p *Provider) pollOnce(ctx context.Context, acks []string, errs map[string]pollSetErr) (*pollResponse, error) {
	body, err := json.Marshal(pollRequest{Ack: acks, SetErrs: errs, MaxEvents: p.cfg.PollMaxEvents, ReturnImmediately: true})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.PollURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.cfg.PollToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.PollToken)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := int64(p.cfg.PollMaxEvents)*maxBodyBytes + maxBodyBytes
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read answer: %w", err)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("transmitter answered %s: %.200s", resp.Status, data)
	}
	var res pollResponse
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if len(res.Sets) > p.cfg.PollMaxEvents {
		return nil, fmt.Errorf("transmitter sent %d SETs, more than the %d asked for", len(res.Sets), p.cfg.PollMaxEvents)
	}
	return &res, nil
}
