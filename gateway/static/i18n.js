// Every string the page and the widget show, in English and Simplified Chinese, chosen from
// the browser's language. t(key, vars) fills {name} placeholders; errorText(code) turns an
// error frame's code into a plain sentence (the server's own message goes in a details line).

const STRINGS = {
  en: {
    newChat: "New chat",
    conversations: "Past conversations",
    menu: "Conversations",
    closeMenu: "Close",
    send: "Send",
    stop: "Stop",
    attach: "Attach image",
    removeImage: "Remove image {name}",
    placeholder: "Message (Enter sends, Shift+Enter: new line)",
    message: "Message",
    conversation: "Conversation",
    jump: "Jump to latest",
    copy: "Copy",
    copied: "Copied",
    copyCode: "Copy code",
    regenerate: "Regenerate",
    edit: "Edit",
    editSave: "Send edited",
    editCancel: "Cancel",
    rename: "Rename",
    renamePrompt: "New title",
    delete: "Delete",
    deleteConfirm: "Delete this conversation and its history?",
    retry: "Retry",
    details: "Details",
    thinking: "Thinking…",
    thought: "Thought for {s} s",
    thoughts: "Thinking",
    untitled: "New conversation",
    demo: "Offline demo model",
    demoTitle: "No API key is configured: the built-in Qwen simulator answers.",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    replyDone: "The reply is complete.",
    replyStopped: "The reply was stopped.",
    replyFailed: "The reply failed.",
    stopped: "(stopped)",
    queued: "Waiting for the model: {n} ahead of you.",
    forgotten: "That conversation is no longer kept on the server; this is a new chat.",
    signIn: "You need to sign in to chat here.",
    signInLink: "Sign in",
    tooLong: "The message has {n} characters; the limit is {max}.",
    imageTooBig: "{name} is {size} MB; images may be at most {max} MB.",
    imageType: "{name} is not a PNG, JPEG, WebP or GIF image.",
    tooManyImages: "At most {max} images per message.",
    notConnected: "Not connected yet; the message is still here.",
    today: "Today",
    budget: "{n} tokens left today",
    budgetTitle: "Today's allowance: {used} of {limit} tokens used; it renews at {at}.",
    quotaWait: "You have used today's allowance. You can write again in {wait} (at {at}).",
    hours: "{h} h {m} min",
    minutes: "{m} min",
  },
  zh: {
    newChat: "新对话",
    conversations: "历史对话",
    menu: "对话列表",
    closeMenu: "关闭",
    send: "发送",
    stop: "停止",
    attach: "添加图片",
    removeImage: "移除图片 {name}",
    placeholder: "输入消息（Enter 发送，Shift+Enter 换行）",
    message: "消息",
    conversation: "对话",
    jump: "跳到最新",
    copy: "复制",
    copied: "已复制",
    copyCode: "复制代码",
    regenerate: "重新生成",
    edit: "编辑",
    editSave: "发送修改",
    editCancel: "取消",
    rename: "重命名",
    renamePrompt: "新标题",
    delete: "删除",
    deleteConfirm: "删除此对话及其历史记录？",
    retry: "重试",
    details: "详情",
    thinking: "思考中…",
    thought: "思考了 {s} 秒",
    thoughts: "思考过程",
    untitled: "新对话",
    demo: "离线演示模型",
    demoTitle: "未配置 API 密钥：由内置的 Qwen 模拟器回答。",
    connecting: "正在连接…",
    connected: "已连接",
    reconnecting: "正在重新连接…",
    offline: "离线",
    replyDone: "回复已完成。",
    replyStopped: "回复已停止。",
    replyFailed: "回复失败。",
    stopped: "（已停止）",
    queued: "正在等待模型：前面还有 {n} 个请求。",
    forgotten: "服务器已不再保存该对话；这是一个新对话。",
    signIn: "需要登录才能在这里聊天。",
    signInLink: "登录",
    tooLong: "消息有 {n} 个字符；上限为 {max}。",
    imageTooBig: "{name} 大小为 {size} MB；图片最大 {max} MB。",
    imageType: "{name} 不是 PNG、JPEG、WebP 或 GIF 图片。",
    tooManyImages: "每条消息最多 {max} 张图片。",
    notConnected: "尚未连接；消息仍保留在输入框中。",
    today: "今天",
    budget: "今日剩余 {n} 个 token",
    budgetTitle: "今日额度：已用 {used} / {limit} 个 token；将于 {at} 重置。",
    quotaWait: "今天的用量已用完。{wait}后（{at}）可以再次发送。",
    hours: "{h} 小时 {m} 分钟",
    minutes: "{m} 分钟",
  },
};

const ERRORS = {
  en: {
    busy: "A reply is still being written. Wait for it, or stop it, then send again.",
    rate_limited: "You are sending messages too quickly. Wait a moment and try again.",
    message_too_long: "The message is too long. Shorten it and send again.",
    quota_exceeded: "You have used today's allowance. It renews at midnight UTC.",
    upstream_throttled: "The model is busy right now. Try again in a moment.",
    upstream_error: "The model ran into a problem and could not finish.",
    upstream_timeout: "The model took too long to answer.",
    upstream_auth: "The gateway could not sign in to the model service. Tell the site's operator.",
    content_filtered: "The model's safety filter stopped this reply.",
    resume_unavailable: "The rest of this reply is no longer available.",
    bad_image: "An image was refused.",
    unauthorized: "You need to sign in to chat here.",
    "token expired": "Your session expired. Reload the page to sign in again.",
    forbidden: "This site or conversation is not allowed to use this assistant.",
    "unknown assistant": "This assistant does not exist.",
    "conversation deleted": "This conversation was deleted.",
    unknown_assistant: "This assistant does not exist.",
    token_expired: "Your session expired. Reload the page to sign in again.",
    try_again_later: "The gateway is busy. Try again in a moment.",
    "try again later": "The gateway is busy. Try again in a moment.",
    store_unavailable: "The gateway's storage is unavailable. Try again in a moment.",
    message_too_big: "The message is too big to send.",
    not_found: "That was not found.",
    internal: "Something went wrong in the gateway.",
    default: "Something went wrong.",
  },
  zh: {
    busy: "上一条回复仍在生成。请等待或停止它，然后再发送。",
    rate_limited: "发送过于频繁。请稍等片刻再试。",
    message_too_long: "消息太长。请缩短后再发送。",
    quota_exceeded: "今天的用量已用完。将在 UTC 午夜重置。",
    upstream_throttled: "模型当前繁忙。请稍后再试。",
    upstream_error: "模型出现问题，未能完成回复。",
    upstream_timeout: "模型响应超时。",
    upstream_auth: "网关无法登录模型服务。请联系网站管理员。",
    content_filtered: "模型的安全过滤器中止了这条回复。",
    resume_unavailable: "这条回复的其余部分已无法获取。",
    bad_image: "有图片被拒绝。",
    unauthorized: "需要登录才能在这里聊天。",
    "token expired": "会话已过期。请重新加载页面并登录。",
    forbidden: "此网站或对话无权使用该助手。",
    "unknown assistant": "该助手不存在。",
    "conversation deleted": "该对话已被删除。",
    unknown_assistant: "该助手不存在。",
    token_expired: "会话已过期。请重新加载页面并登录。",
    try_again_later: "网关繁忙。请稍后再试。",
    "try again later": "网关繁忙。请稍后再试。",
    store_unavailable: "网关存储暂不可用。请稍后再试。",
    message_too_big: "消息太大，无法发送。",
    not_found: "未找到。",
    internal: "网关内部出错。",
    default: "出错了。",
  },
};

export function pickLanguage(languages = navigator.languages || [navigator.language]) {
  for (const tag of languages) {
    const lower = String(tag || "").toLowerCase();
    if (lower.startsWith("zh")) return "zh";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export const lang = pickLanguage();

export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function errorText(code) {
  const table = ERRORS[lang];
  return table[code] ?? table.default;
}

/** How long until ``seconds`` from now, in words: "3 h 20 min", "5 min". */
export function waitText(seconds) {
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h ? t("hours", { h, m }) : t("minutes", { m });
}

/** A clock time in the reader's language and time zone (the day's quotas renew at 00:00 UTC). */
export function clock(date) {
  return date.toLocaleTimeString(lang === "zh" ? "zh-CN" : "en", { hour: "2-digit", minute: "2-digit" });
}

/** An error frame as a sentence: errorText, and for a spent quota when it renews. */
export function errorSentence(frame) {
  if (frame.code === "quota_exceeded" && Number(frame.retry_after_s) > 0) {
    const at = clock(new Date(Date.now() + frame.retry_after_s * 1000));
    return t("quotaWait", { wait: waitText(frame.retry_after_s), at });
  }
  return errorText(frame.code);
}

/** Fill every [data-i18n] element's text and [data-i18n-attr="attr:key,..."] attributes. */
export function translate(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(",")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
}

export function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  const locale = lang === "zh" ? "zh-CN" : "en";
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleDateString(locale, { month: "short", day: "numeric" });
}
