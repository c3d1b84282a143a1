package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// api is a small client of the server's JSON API: enough to create the
// accounts and the chat a scenario needs.
type api struct {
	base string // http://host:port
	hc   *http.Client
}

func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	return &http.Client{Transport: tr, Timeout: timeout}
}

// apiError is a non-2xx answer with the server's error code.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (a *api) call(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &eb) == nil {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
			if e.Code == "" {
				e.Code, e.Message = eb.Code, eb.Message
			}
		}
		if e.Code == "" {
			e.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// account is one user the generator signs in as.
type account struct {
	Email    string    `json:"email"`
	Password string    `json:"password"`
	UserID   string    `json:"user_id"`
	Token    string    `json:"access_token"`
	Expires  time.Time `json:"expires_at"`
}

type authAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	User        struct {
		ID string `json:"id"`
	} `json:"user"`
}

func (a *api) register(ctx context.Context, email, password string) (account, error) {
	var out authAnswer
	err := a.call(ctx, http.MethodPost, "/api/v1/auth/register", "",
		map[string]string{"email": email, "password": password}, &out)
	if err != nil {
		return account{}, err
	}
	return accountFrom(email, password, out), nil
}

func (a *api) login(ctx context.Context, email, password string) (account, error) {
	var out authAnswer
	err := a.call(ctx, http.MethodPost, "/api/v1/auth/login", "",
		map[string]string{"email": email, "password": password}, &out)
	if err != nil {
		return account{}, err
	}
	return accountFrom(email, password, out), nil
}

func accountFrom(email, password string, out authAnswer) account {
	acc := account{Email: email, Password: password, UserID: out.User.ID, Token: out.AccessToken}
	if exp, ok := tokenExpiry(out.AccessToken); ok {
		acc.Expires = exp
	} else {
		acc.Expires = time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return acc
}

// tokenExpiry reads the exp claim of a JWT without verifying it.
func tokenExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(c.Exp, 0), true
}

// createChat creates a group chat owned by token's user with the given
// members (emails) and the assistant off, and returns its id.
func (a *api) createChat(ctx context.Context, token, title string, emails []string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	in := map[string]any{"title": title, "participants": emails, "settings": map[string]any{"ai_mode": "off"}}
	if err := a.call(ctx, http.MethodPost, "/api/v1/chats", token, in, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// sendREST stores a message through POST /chats/{id}/messages.
func (a *api) sendREST(ctx context.Context, token, chatID, content, clientID string) error {
	return a.call(ctx, http.MethodPost, "/api/v1/chats/"+chatID+"/messages", token,
		map[string]string{"content": content, "client_id": clientID}, nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// accounts returns n signed-in accounts. With a file, the accounts saved
// there are reused (signed in again when their token would expire within
// need) and new ones are added and saved; registering is slow on purpose
// (argon2id), so reusing accounts across runs saves minutes, and lets a
// run start the server afresh after registering so the hashing does not
// weigh on the memory figures.
func accounts(ctx context.Context, a *api, n int, file string, conc int, need time.Duration, logf func(string, ...any)) ([]account, error) {
	var have []account
	if file != "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &have); err != nil {
				return nil, fmt.Errorf("read %s: %w", file, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	if len(have) > n {
		have = have[:n]
	}
	out := make([]account, n)
	copy(out, have)
	start := time.Now()
	var done, relogged atomic.Int64
	var firstErr error
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	prefix := "load-" + randomHex(4)
	password := "bench-" + randomHex(12)
	for w := 0; w < max(conc, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var acc account
				var err error
				if i < len(have) {
					if time.Until(have[i].Expires) > need {
						continue
					}
					acc, err = a.login(ctx, have[i].Email, have[i].Password)
					relogged.Add(1)
				} else {
					acc, err = a.register(ctx, fmt.Sprintf("%s-%d@load.example.com", prefix, i), password)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("account %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				out[i] = acc
				if k := done.Add(1); k%200 == 0 {
					logf("accounts: %d ready (%.0f/s)", k, float64(k)/time.Since(start).Seconds())
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n > len(have) || relogged.Load() > 0 {
		logf("accounts: %d registered, %d signed in again, %d reused in %s", n-min(n, len(have)), relogged.Load(),
			int64(min(n, len(have)))-relogged.Load(), time.Since(start).Round(time.Millisecond))
	}
	if file != "" {
		// Keep the accounts the file had beyond n too.
		all := out
		if old := readAccounts(file); len(old) > n {
			all = append(append([]account{}, out...), old[n:]...)
		}
		b, _ := json.MarshalIndent(all, "", " ")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readAccounts(file string) []account {
	var have []account
	if b, err := os.ReadFile(file); err == nil {
		json.Unmarshal(b, &have)
	}
	return have
}

// ticket asks for a single-use WebSocket ticket (POST /ws/ticket).
func (a *api) ticket(ctx context.Context, token string) (string, error) {
	var out struct {
		Ticket string `json:"ticket"`
	}
	if err := a.call(ctx, http.MethodPost, "/api/v1/ws/ticket", token, nil, &out); err != nil {
		return "", err
	}
	return out.Ticket, nil
}

// history reads one page of a chat's messages: after > 0 pages forward
// from that seq (oldest first); after < 0 reads the newest page.
func (a *api) history(ctx context.Context, token, chatID string, after int64, limit int) ([]int64, bool, error) {
	q := fmt.Sprintf("?limit=%d", limit)
	if after >= 0 {
		q += fmt.Sprintf("&after=%d", after)
	}
	var out struct {
		Messages []struct {
			Seq int64 `json:"seq"`
		} `json:"messages"`
		HasMore bool `json:"has_more"`
	}
	if err := a.call(ctx, http.MethodGet, "/api/v1/chats/"+chatID+"/messages"+q, token, nil, &out); err != nil {
		return nil, false, err
	}
	seqs := make([]int64, len(out.Messages))
	for i, m := range out.Messages {
		seqs[i] = m.Seq
	}
	return seqs, out.HasMore, nil
}

// lastSeq returns the newest seq of a chat (0: no message).
func (a *api) lastSeq(ctx context.Context, token, chatID string) (int64, error) {
	seqs, _, err := a.history(ctx, token, chatID, -1, 1)
	var last int64
	for _, s := range seqs {
		last = max(last, s)
	}
	return last, err
}
