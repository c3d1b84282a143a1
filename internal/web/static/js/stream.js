// Answers being generated, in every chat of the user (the socket receives
// them all, so a chat opened mid-answer shows the text at once). Offsets in
// ai_delta count UTF-8 bytes, so the text is tracked with its byte length.
const enc = new TextEncoder();
const dec = new TextDecoder();

export class Streams {
  constructor() { this.byId = new Map(); }

  start(d) {
    const s = { chatId: d.chat_id, id: d.message_id, seq: d.seq, text: '', bytes: 0, model: d.model };
    this.byId.set(d.message_id, s);
    return s;
  }

  // delta applies an ai_delta; false means a gap (the text is unknown until
  // ai_done or a snapshot).
  delta(d) {
    let s = this.byId.get(d.message_id);
    if (!s) s = this.start(d);
    if (d.offset === s.bytes) {
      s.text += d.delta;
      s.bytes += enc.encode(d.delta).length;
    } else if (d.offset < s.bytes) {
      s.text = dec.decode(enc.encode(s.text).slice(0, d.offset)) + d.delta;
      s.bytes = d.offset + enc.encode(d.delta).length;
    } else {
      return null;
    }
    return s;
  }

  end(id) { this.byId.delete(id); }
  get(id) { return this.byId.get(id); }
  inChat(chatId) {
    for (const s of this.byId.values()) if (s.chatId === chatId) return s;
    return null;
  }
}
