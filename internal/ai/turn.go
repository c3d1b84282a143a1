package ai

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/ai/prompt"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
)

// Event names the assistant publishes (docs/protocol.md).
const (
	EventStart = "ai_start"
	EventDelta = "ai_delta"
	EventDone  = "ai_done"
	EventError = "ai_error"
)

type startData struct {
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id"`
	Seq       int64  `json:"seq"`
	Model     string `json:"model"`
	ReplyTo   int64  `json:"reply_to"` // seq of the message being answered
}

type deltaData struct {
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id"`
	Seq       int64  `json:"seq"`
	Offset    int    `json:"offset"` // bytes of the answer before this delta
	Delta     string `json:"delta"`

	arrived time.Time // when the oldest chunk in it reached this machine; zero: not timed
}

// ArrivedAt implements realtime.Arrived: the hub times the frame from the
// chunk's arrival too (aichat_ws_arrival_delay_seconds).
func (d deltaData) ArrivedAt() time.Time { return d.arrived }

type doneData struct {
	ChatID       string `json:"chat_id"`
	MessageID    string `json:"message_id"`
	Seq          int64  `json:"seq"`
	Status       string `json:"status"` // complete or stopped
	Content      string `json:"content"`
	FinishReason string `json:"finish_reason,omitempty"`
	Model        string `json:"model"`
	Usage        *usage `json:"usage,omitempty"`
	Notice       string `json:"notice,omitempty"` // why the text shown is not the model's
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type errorData struct {
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id,omitempty"`
	Seq       int64  `json:"seq,omitempty"`
	ReplyTo   int64  `json:"reply_to,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Content   string `json:"content,omitempty"` // the partial answer kept, if any
	Retry     int    `json:"retry_after,omitempty"`
}

// turn is one generation running on this instance.
type turn struct {
	chatID   string
	userID   string
	members  []string
	msg      *chat.Message
	question *chat.Message   // the person's message being answered
	history  []*chat.Message // what came before question, if read with it
	replyTo  int64
	settings chat.Settings
	client   *llm.Client
	model    string
	cancel   context.CancelCauseFunc
	release  func() // gives the user's concurrency slot back; idempotent

	mu      sync.Mutex
	text    strings.Builder
	pending strings.Builder // text not yet sent as a delta
	since   time.Time       // when the oldest chunk in pending reached this machine
	sentLen int             // bytes already sent in deltas
}

// errStopped is the cause of a generation canceled by a user's stop.
var errStopped = errors.New("stopped by a user")

// MessageCreated starts an answer when a person's message calls for one.
// It is chat.Events' hook and runs on the sender's request, so it only
// decides and hands the work to a goroutine the service owns.
func (s *Service) MessageCreated(m *chat.Message, members []string, _ []chat.UnreadChange) {
	if m.AuthorKind != chat.AuthorUser {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.answer(m, members)
	}()
	if at, ok := m.ChatAtSend(); ok && WantsAnswer(at.Settings, m.Content) {
		// Let the answer's goroutine run first on this processor, before
		// what the sender's goroutine does next (its ack, whose write would
		// otherwise take the next turn): the question's way to the model is
		// what the people in the chat wait for.
		runtime.Gosched()
	}
}

func (*Service) UnreadChanged(...chat.UnreadChange)     {}
func (*Service) ChatChanged(string, []string, []string) {}

// answer decides whether m needs an answer and runs it. It decides from
// the chat's settings as they were when m was stored (Send read them in the
// same transaction), so a mode switched a moment later does not apply to
// it, and reads nothing before the answer starts.
func (s *Service) answer(m *chat.Message, members []string) {
	at, ok := m.ChatAtSend()
	c := &chat.Chat{ID: m.ChatID, Kind: at.Kind, Settings: at.Settings}
	if !ok {
		// Not a message Send just stored: read the chat as it is now.
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		st, err := s.opt.Chats.SettingsOf(ctx, m.ChatID)
		if err != nil {
			if !apperr.Is(err, apperr.CodeChatNotFound) {
				s.log.Error("ai: load chat settings", "chat_id", m.ChatID, "err", err)
			}
			return
		}
		c.Settings = st
	}
	if !WantsAnswer(c.Settings, m.Content) {
		return
	}
	if !ok {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		got, err := s.opt.Chats.Get(ctx, m.Author, m.ChatID)
		cancel()
		if err != nil {
			if !apperr.Is(err, apperr.CodeChatNotFound) {
				s.log.Error("ai: load chat", "chat_id", m.ChatID, "err", err)
			}
			return
		}
		c = got
	}
	var hist []*chat.Message
	if at.Prefetched {
		c.Participants, hist = at.Participants, at.History
	}
	s.run(c, m.Author, members, m, nil, hist)
}

// AnswerDue says whether a person's message with this content will be
// answered in a chat with these settings (chat.Service.SetAnswerDue): with
// no provider configured the turn ends in ai.notConfigured, with nothing
// to read for it.
func (s *Service) AnswerDue(st chat.Settings, content string) bool {
	return s.Configured() && WantsAnswer(st, content)
}

// WantsAnswer says whether a person's message with this content gets an
// answer in a chat with these settings.
func WantsAnswer(st chat.Settings, content string) bool {
	switch st.AIMode {
	case chat.ModeOff:
		return false
	case chat.ModeMention:
		return prompt.Mentioned(content)
	}
	return true
}

// run starts and runs a generation answering question. With regen set,
// that assistant message (already reset to streaming) is rewritten instead
// of a new one being created. Everything that can refuse the turn is
// checked before an answer exists; a refusal reaches the chat as ai_error
// naming the question (and a regenerated answer is stored as failed, so it
// does not stay streaming). c needs its id, kind and settings; with
// Participants nil they are read while the answer is being stored. With
// hist non-nil (read when question was stored) the history is not read.
func (s *Service) run(c *chat.Chat, userID string, members []string, question *chat.Message, regen *chat.Message,
	hist []*chat.Message) {
	replyTo := question.Seq
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	fail := func(err error) {
		s.opt.Metrics.Finished.WithLabelValues(outcomeOf(err)).Inc()
		code, msg, retry := describe(err)
		d := errorData{ChatID: c.ID, ReplyTo: replyTo, Code: code, Message: msg, Retry: retry}
		if regen != nil {
			d.MessageID, d.Seq = regen.ID, regen.Seq
			sctx, scancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
			if _, serr := s.opt.Chats.SaveAnswer(sctx, regen, chat.Answer{Status: chat.StatusFailed, ErrorCode: code}); serr != nil {
				s.log.Error("ai: end refused regeneration", "chat_id", c.ID, "err", serr)
			}
			scancel()
		}
		s.opt.Bus.SendChat(c.ID, members, EventError, d)
	}
	client, model, err := s.route(c.Settings.Model)
	if err != nil {
		fail(err)
		return
	}
	t := &turn{chatID: c.ID, userID: userID, members: members, question: question, replyTo: replyTo,
		settings: c.Settings, client: client, model: model, history: hist}
	if err := s.moderateQuestion(ctx, t); err != nil {
		fail(err)
		return
	}
	if err := s.admit(ctx, userID); err != nil {
		fail(err)
		return
	}
	t.release = sync.OnceFunc(func() { s.release(userID) })
	// Claimed before the answer exists, with its cancel set, so a stop that
	// arrives at any moment from here on finds it.
	gctx, gcancel := context.WithCancelCause(s.ctx)
	defer gcancel(nil)
	t.cancel = gcancel
	if !s.claim(t) {
		t.release()
		fail(apperr.New(apperr.CodeAIBusy, "The assistant is already answering in this chat."))
		return
	}
	defer s.free(t)
	// The model is called from this goroutine as soon as its request is
	// built (with the history and participants Send read, or read here),
	// while another goroutine writes the answer's row: the model takes far
	// longer to answer than the insert, and its deltas wait in the turn
	// until ai_start has gone out. If the row cannot be written (ai.busy
	// on another instance), the request is canceled before anything
	// reached the chat.
	start := s.opt.Now()
	streamDone := make(chan struct{})
	side := s.announce(gctx, t, c, regen, streamDone)
	res, err := s.generate(gctx, t, c)
	close(streamDone)
	<-side.done
	if side.err != nil {
		s.free(t)
		fail(side.err)
		return
	}
	defer s.opt.Metrics.Active.Dec()
	s.flush(t)
	if err != nil && context.Cause(gctx) == errStopped {
		err = errStopped
	}
	s.finish(t, res, err, s.opt.Now().Sub(start))
}

// sideTask is the answer's row being written, announced and relayed
// beside the model call.
type sideTask struct {
	done chan struct{} // closed once err is set and the relay has ended
	err  error         // the row could not be written: nothing was announced
}

// announce writes the answer's row (unless regen is the row), sends
// ai_start and what arrived meanwhile, and then relays and saves until
// streamDone is closed, on a goroutine of its own. If the row cannot be
// written it cancels the generation with errNotStarted.
func (s *Service) announce(ctx context.Context, t *turn, c *chat.Chat, regen *chat.Message, streamDone <-chan struct{}) *sideTask {
	side := &sideTask{done: make(chan struct{})}
	go func() {
		defer close(side.done)
		msg := regen
		if msg == nil {
			sctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			sent, err := s.opt.Chats.StartAnswer(sctx, t.userID, c.ID, t.members, t.model, t.client.Provider().Name)
			cancel()
			if err != nil {
				side.err = err
				t.cancel(errNotStarted)
				return
			}
			msg = sent.Message
		}
		s.opt.Metrics.Started.Inc()
		s.opt.Metrics.Active.Inc()
		t.mu.Lock()
		t.msg = msg
		// Under the turn's lock, so no delta overtakes it.
		s.opt.Bus.SendChat(c.ID, t.members, EventStart, startData{ChatID: c.ID, MessageID: msg.ID, Seq: msg.Seq, Model: t.model, ReplyTo: t.replyTo})
		t.mu.Unlock()
		if s.opt.Coalesce <= 0 {
			s.flush(t) // what arrived before the row existed
		}
		s.relay(ctx, t, streamDone)
	}()
	return side
}

// errNotStarted cancels a generation whose answer could not be stored.
var errNotStarted = errors.New("the answer could not be started")

// moderateQuestion refuses a question that matches a blocked pattern or
// that the provider's moderation flags, before anything is stored.
func (s *Service) moderateQuestion(ctx context.Context, t *turn) error {
	if blocked, what := s.opt.Moderator.Check(t.question.Content); blocked {
		s.log.Info("ai: message refused by moderation", "chat_id", t.chatID, "matched", what)
		s.flag(ctx, t, FlagPattern, what)
		return apperr.New(apperr.CodeAIModerated, "The assistant does not answer messages about this topic.")
	}
	if s.flaggedByProvider(ctx, t, t.question.Content) {
		return apperr.New(apperr.CodeAIModerated, "The assistant does not answer messages about this topic.")
	}
	return nil
}

// admit applies the per-user caps before anything is spent. Whether the
// user is exempt (a database read) is only asked when a cap would apply.
func (s *Service) admit(ctx context.Context, userID string) error {
	asked, exempt := false, false
	isExempt := func() bool {
		if !asked {
			asked, exempt = true, s.opt.Exempt != nil && s.opt.Exempt(ctx, userID)
		}
		return exempt
	}
	if s.opt.DailyTokens > 0 {
		isExempt()
	}
	s.mu.Lock()
	if !asked && s.perUser[userID] >= s.opt.MaxConcurrent {
		s.mu.Unlock()
		isExempt()
		s.mu.Lock()
	}
	if !exempt && s.perUser[userID] >= s.opt.MaxConcurrent {
		s.mu.Unlock()
		return &apperr.Error{Code: apperr.CodeAIQuota, Retry: 5,
			Message: "You already have the most answers generating at once; wait for one to finish."}
	}
	s.perUser[userID]++
	s.mu.Unlock()
	if exempt || s.opt.DailyTokens <= 0 {
		return nil
	}
	used, err := s.tokensToday(ctx, userID)
	if err != nil {
		s.release(userID)
		return err
	}
	if used >= s.opt.DailyTokens {
		s.release(userID)
		return &apperr.Error{Code: apperr.CodeAIQuota, Retry: secondsToMidnight(s.opt.Now()),
			Message: "You have used today's assistant allowance; it renews at midnight UTC."}
	}
	return nil
}

func (s *Service) release(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[userID]--; s.perUser[userID] <= 0 {
		delete(s.perUser, userID)
	}
}

func (s *Service) claim(t *turn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.running[t.chatID]; busy {
		return false
	}
	s.running[t.chatID] = t
	return true
}

// free gives back what a running turn holds, the chat and the user's
// slot, before its end is announced, so that a question sent the moment
// ai_done or ai_error arrives is refused neither as ai.busy nor as over
// the cap. It may be called again (run defers it for every other path).
func (s *Service) free(t *turn) {
	s.unclaim(t)
	t.release()
}

func (s *Service) unclaim(t *turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[t.chatID] == t {
		delete(s.running, t.chatID)
	}
}

// generate builds the request and streams the answer into t. Deltas go
// out as they arrive when nothing is coalesced (flush does nothing until
// the answer's row exists).
func (s *Service) generate(ctx context.Context, t *turn, c *chat.Chat) (*llm.Result, error) {
	req, err := s.request(ctx, t, c)
	if err != nil {
		return nil, err
	}
	onDelta := t.add
	if s.opt.Coalesce <= 0 {
		onDelta = func(d string, arrived time.Time) { t.add(d, arrived); s.flush(t) }
	}
	return t.client.Stream(ctx, req, onDelta)
}

// request reads the history (and the participants, unless c has them)
// concurrently and builds the upstream request.
func (s *Service) request(ctx context.Context, t *turn, c *chat.Chat) (llm.Request, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	parts, perr := c.Participants, error(nil)
	var wg sync.WaitGroup
	if parts == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts, perr = s.opt.Chats.Participants(ctx, c.ID)
		}()
	}
	// The history is what came before the question, whatever was sent
	// between the question and this answer.
	hist, err := t.history, error(nil)
	if hist == nil {
		hist, err = s.opt.Chats.Recent(ctx, c.ID, t.question.Seq, c.Settings.Depth)
	}
	wg.Wait()
	if err == nil {
		err = perr
	}
	if err != nil {
		return llm.Request{}, err
	}
	return s.build(t, c, parts, hist)
}

// build makes the upstream request from the chat's settings,
// participants and history.
func (s *Service) build(t *turn, c *chat.Chat, parts []chat.Participant, hist []*chat.Message) (llm.Request, error) {
	newMsg := t.question
	names := map[string]string{}
	in := prompt.Input{SystemRules: s.opt.SystemPrompt, ChatContext: c.Settings.Context, Group: c.Kind == chat.KindGroup,
		Budget: prompt.PromptBudget(t.model, c.Settings.MaxTokens)}
	if p, ok := chat.Personas[c.Settings.Persona]; ok {
		in.PersonaPrompt = p.Prompt
	}
	for _, p := range parts {
		in.Participants = append(in.Participants, prompt.Participant{Name: p.Name, Email: p.Email})
		names[p.ID] = p.Email
	}
	turnOf := func(m *chat.Message) prompt.Turn {
		return prompt.Turn{Author: names[m.Author], Assistant: m.AuthorKind == chat.AuthorAssistant,
			Content: m.Content, Failed: m.Status == chat.StatusFailed || m.Status == chat.StatusStreaming}
	}
	for _, m := range hist {
		in.History = append(in.History, turnOf(m))
	}
	in.New = turnOf(newMsg)
	msgs, stats := prompt.Build(in)
	if stats.OverBudget {
		return llm.Request{}, apperr.New(apperr.CodeAIContextLength, "The message is too long for the model %s.", t.model)
	}
	req := llm.Request{Model: t.model, MaxTokens: c.Settings.MaxTokens, Stop: c.Settings.Stop, User: t.userID}
	temp := c.Settings.Temperature
	req.Temperature = &temp
	for _, m := range msgs {
		req.Messages = append(req.Messages, llm.Message{Role: m.Role, Content: m.Content})
	}
	return req, nil
}

// add receives each content delta from the provider, with the time its
// chunk reached this machine.
func (t *turn) add(delta string, arrived time.Time) {
	t.mu.Lock()
	if t.pending.Len() == 0 {
		t.since = arrived
	}
	t.text.WriteString(delta)
	t.pending.WriteString(delta)
	t.mu.Unlock()
}

// relay sends pending text as ai_delta every Coalesce (the stream's
// callback does when it is zero) and saves the text so far every
// SaveEvery, until the generation is done or ctx ends.
func (s *Service) relay(ctx context.Context, t *turn, done <-chan struct{}) {
	var tickC <-chan time.Time // none when the stream's callback flushes each chunk
	if s.opt.Coalesce > 0 {
		tick := time.NewTicker(s.opt.Coalesce)
		defer tick.Stop()
		tickC = tick.C
	}
	save := time.NewTicker(s.opt.SaveEvery)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-tickC:
			s.flush(t)
		case <-save.C:
			t.mu.Lock()
			text := t.text.String()
			t.mu.Unlock()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := s.opt.Chats.SaveAnswer(sctx, t.msg, chat.Answer{Content: text, Status: chat.StatusStreaming}); err != nil && ctx.Err() == nil {
				s.log.Warn("ai: save partial answer", "chat_id", t.chatID, "err", err)
			}
			cancel()
		}
	}
}

// flush sends the text not yet relayed as one ai_delta. It publishes
// while holding the turn's lock so deltas and snapshots leave in offset
// order (publishing only queues frames and never blocks on a socket).
func (s *Service) flush(t *turn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending.Len() == 0 || t.msg == nil {
		return // nothing new, or the answer's row is not written yet
	}
	d := deltaData{ChatID: t.chatID, MessageID: t.msg.ID, Seq: t.msg.Seq, Offset: t.sentLen, Delta: t.pending.String(), arrived: t.since}
	t.sentLen += t.pending.Len()
	t.pending.Reset()
	s.opt.Bus.SendChat(t.chatID, t.members, EventDelta, d)
	s.opt.Metrics.Deltas.Inc()
}

// Snapshot sends userID the text generated so far in each of the chats
// that has an answer streaming, as an ai_delta from offset 0: a client
// that joins mid-answer (a reload, a reconnect, another tab) then goes on
// with the live deltas. Chats answered on another instance are asked
// there.
func (s *Service) Snapshot(userID string, chatIDs []string) {
	var elsewhere []string
	for _, id := range chatIDs {
		if !s.snapshotLocal(userID, id) {
			elsewhere = append(elsewhere, id)
		}
	}
	if len(elsewhere) > 0 {
		b, _ := json.Marshal(snapshotControl{UserID: userID, ChatIDs: elsewhere})
		s.opt.Bus.Control(controlSnapshot, b)
	}
}

const controlSnapshot = "ai_snapshot"

type snapshotControl struct {
	UserID  string   `json:"user_id"`
	ChatIDs []string `json:"chat_ids"`
}

func (s *Service) onSnapshotControl(payload []byte) {
	var c snapshotControl
	if json.Unmarshal(payload, &c) != nil {
		return
	}
	for _, id := range c.ChatIDs {
		s.snapshotLocal(c.UserID, id)
	}
}

func (s *Service) snapshotLocal(userID, chatID string) bool {
	s.mu.Lock()
	t := s.running[chatID]
	s.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.msg == nil || !slices.Contains(t.members, userID) {
		return true // starting: the client gets ai_start and every delta
	}
	text := t.text.String()[:t.sentLen]
	s.opt.Bus.SendChat(t.chatID, []string{userID}, EventStart, startData{ChatID: t.chatID, MessageID: t.msg.ID, Seq: t.msg.Seq,
		Model: t.model, ReplyTo: t.replyTo})
	s.opt.Bus.SendChat(t.chatID, []string{userID}, EventDelta, deltaData{ChatID: t.chatID, MessageID: t.msg.ID, Seq: t.msg.Seq, Delta: text})
	return true
}

// finish stores the answer's end, records usage, and tells the chat.
func (s *Service) finish(t *turn, res *llm.Result, err error, took time.Duration) {
	t.mu.Lock()
	text := t.text.String()
	t.mu.Unlock()
	a := chat.Answer{Content: text, Duration: took}
	if res != nil {
		a.FinishReason = res.FinishReason
		a.TimeToFirst = res.TimeToFirst
		if res.Usage != nil {
			a.PromptTokens, a.CompletionTokens = res.Usage.PromptTokens, res.Usage.CompletionTokens
		}
	}
	notice := ""
	switch {
	case err == nil:
		a.Status = chat.StatusComplete
		if ok, why := prompt.CheckAnswer(text); !ok {
			s.log.Warn("ai: answer not shown", "chat_id", t.chatID, "reason", why, "model", t.model)
			a.Content, a.ErrorCode, notice = prompt.Notice, apperr.CodeAIFiltered, "filtered"
		} else if blocked, what := s.opt.Moderator.Check(text); blocked {
			s.log.Info("ai: answer refused by moderation", "chat_id", t.chatID, "matched", what)
			s.flag(s.ctx, t, FlagPattern, what)
			a.Content, a.ErrorCode, notice = prompt.Notice, apperr.CodeAIModerated, "moderated"
		} else if s.flaggedByProvider(s.ctx, t, text) {
			a.Content, a.ErrorCode, notice = prompt.Notice, apperr.CodeAIModerated, "moderated"
		}
	case errors.Is(err, errStopped):
		a.Status = chat.StatusStopped
	case s.ctx.Err() != nil && llm.KindOf(err) == llm.Canceled:
		// This instance is shutting down: nobody pressed stop. Stored like
		// an answer whose instance died (FailStaleAnswers), text kept.
		a.Status, a.ErrorCode = chat.StatusFailed, "ai.interrupted"
	default:
		a.Status = chat.StatusFailed
		a.ErrorCode, _, _ = describe(err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if _, serr := s.opt.Chats.SaveAnswer(ctx, t.msg, a); serr != nil {
		s.log.Error("ai: save answer", "chat_id", t.chatID, "err", serr)
	}
	if res != nil && res.Usage != nil {
		s.recordUsage(ctx, t.userID, t.model, t.client.Provider().Name, res.Usage)
	}
	// The chat is free on every instance once the answer stopped
	// streaming, and the usage is counted: free it here too before anyone
	// hears the answer ended.
	s.free(t)
	s.observe(t, res, err, took)
	if a.Status == chat.StatusFailed {
		code, msg, retry := describe(err)
		s.opt.Bus.SendChat(t.chatID, t.members, EventError, errorData{ChatID: t.chatID, MessageID: t.msg.ID, Seq: t.msg.Seq,
			ReplyTo: t.replyTo, Code: code, Message: msg, Content: text, Retry: retry})
		return
	}
	d := doneData{ChatID: t.chatID, MessageID: t.msg.ID, Seq: t.msg.Seq, Status: a.Status, Content: a.Content,
		FinishReason: a.FinishReason, Model: t.model, Notice: notice}
	if res != nil && res.Usage != nil {
		d.Usage = &usage{PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens}
	}
	s.opt.Bus.SendChat(t.chatID, t.members, EventDone, d)
}

// Stop stops the chat's generation, on whichever instance runs it. Any
// member may stop it; with nothing generating it is ai.notGenerating.
func (s *Service) Stop(ctx context.Context, userID, chatID string) error {
	if _, err := s.opt.Chats.Members(ctx, userID, chatID); err != nil {
		return err
	}
	if s.stopLocal(chatID) {
		return nil
	}
	streaming, err := s.opt.Chats.Streaming(ctx, chatID)
	if err != nil {
		return err
	}
	if !streaming {
		return apperr.New(apperr.CodeAINotGenerating, "Nothing is being generated in this chat.")
	}
	b, _ := json.Marshal(stopControl{ChatID: chatID})
	s.opt.Bus.Control(controlStop, b)
	return nil
}

const controlStop = "ai_stop"

type stopControl struct {
	ChatID string `json:"chat_id"`
}

func (s *Service) onStopControl(payload []byte) {
	var c stopControl
	if json.Unmarshal(payload, &c) == nil {
		s.stopLocal(c.ChatID)
	}
}

func (s *Service) stopLocal(chatID string) bool {
	s.mu.Lock()
	t := s.running[chatID]
	s.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel(errStopped)
	}
	return true
}

// Regenerate writes the chat's last answer again; the old text is kept as
// a previous version.
func (s *Service) Regenerate(ctx context.Context, userID, chatID string, seq int64) (*chat.Message, error) {
	c, err := s.opt.Chats.Get(ctx, userID, chatID)
	if err != nil {
		return nil, err
	}
	client, model, err := s.route(c.Settings.Model)
	if err != nil {
		return nil, err
	}
	// The answered message is the last person's message before seq.
	prev, err := s.opt.Chats.Recent(ctx, chatID, seq, 50)
	if err != nil {
		return nil, err
	}
	var question *chat.Message
	for i := len(prev) - 1; i >= 0; i-- {
		if prev[i].AuthorKind == chat.AuthorUser {
			question = prev[i]
			break
		}
	}
	if question == nil {
		return nil, apperr.Invalid("seq", "There is no message for this answer to reply to.")
	}
	// Refuse now what run would refuse, so the caller gets the error and
	// the current answer stays as it is.
	if err := s.moderateQuestion(ctx, &turn{chatID: chatID, client: client, question: question}); err != nil {
		return nil, err
	}
	if err := s.admit(ctx, userID); err != nil {
		return nil, err
	}
	s.release(userID)
	sent, err := s.opt.Chats.Regenerate(ctx, userID, chatID, seq, model, client.Provider().Name)
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(c, userID, sent.Members, question, sent.Message, nil)
	}()
	return sent.Message, nil
}

// describe turns an error into what the chat is told: a code, a message
// for people, and seconds to wait when waiting helps.
func describe(err error) (code, message string, retry int) {
	if e, ok := apperr.As(err); ok {
		return e.Code, e.Message, e.Retry
	}
	var le *llm.Error
	if errors.As(err, &le) {
		retry = int(le.RetryAfter.Round(time.Second) / time.Second)
		switch le.Kind {
		case llm.Auth:
			return apperr.CodeAIAuth, "The AI provider refused the server's credentials; an admin must check its API key.", 0
		case llm.RateLimit:
			return apperr.CodeAIRateLimited, "The AI provider is rate limiting requests; try again in a moment.", max(retry, 1)
		case llm.Quota:
			return apperr.CodeAIProviderQuota, "The AI provider's quota or credit is used up; an admin must top it up.", 0
		case llm.ModelNotFound:
			return apperr.CodeAIModelNotFound, "The model of this chat does not exist at the provider; pick another in the chat's settings.", 0
		case llm.ContextLength:
			return apperr.CodeAIContextLength, "The conversation is too long for the model; lower the depth or start a new chat.", 0
		case llm.Timeout:
			return apperr.CodeAITimeout, "The AI provider stopped sending the answer; try again.", 0
		case llm.Truncated:
			return apperr.CodeAITruncated, "The answer was cut off by the AI provider; try again.", 0
		case llm.Unavailable:
			return apperr.CodeAIUnavailable, "The AI provider is not reachable right now; try again later.", max(retry, 0)
		case llm.Canceled:
			return apperr.CodeAIUnavailable, "The answer was interrupted.", 0
		}
		return apperr.CodeAIUpstream, "The AI provider reported an error: " + truncate(le.Message, 200), 0
	}
	return apperr.CodeInternal, "Internal error.", 0
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "complete"
	case errors.Is(err, errStopped):
		return "stopped"
	}
	code, _, _ := describe(err)
	return code
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func secondsToMidnight(now time.Time) int {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return int(next.Sub(now).Seconds()) + 1
}

// flaggedByProvider asks OpenAI's moderation endpoint, when configured and
// the chat's provider is OpenAI. If the endpoint fails the text passes:
// the configured patterns still apply, and an outage of the moderation
// service must not stop the chat.
func (s *Service) flaggedByProvider(ctx context.Context, t *turn, text string) bool {
	if !s.opt.ProviderModeration || t.client.Provider().Name != "openai" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	flagged, cats, err := t.client.Moderate(ctx, text)
	if err != nil {
		s.log.Warn("ai: moderation endpoint failed; text passed", "chat_id", t.chatID, "err", err)
		return false
	}
	if flagged {
		s.log.Info("ai: text flagged by the provider's moderation", "chat_id", t.chatID, "categories", cats)
		s.flag(ctx, t, FlagProvider, providerMatched(cats))
	}
	return flagged
}
