// Frontdesk sign-in: posts to /api/v1/auth/login, then shows who is signed in.
// Plain module, no dependencies. Text is only ever inserted with textContent (never as HTML).

const API = "/api/v1/auth";
const messages = JSON.parse(document.getElementById("fd-messages").textContent);
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// Where to go after signing in: the page that sent us here (same origin only), else the desk.
// Resolved as the browser will resolve it: "/\t/evil.example" passes a prefix check but is another site.
function nextPage() {
  const next = new URLSearchParams(window.location.search).get("next");
  if (!next || !next.startsWith("/")) return "/desk";
  const url = new URL(next, window.location.origin);
  return url.origin === window.location.origin ? url.pathname + url.search + window.location.hash : "/desk";
}

function roleLabel(role) {
  return messages[`role_${role}`] || role;
}

function showSignedIn(user, csrfToken) {
  $("fd-csrf").setAttribute("content", csrfToken || "");
  $("who-name").textContent = user.name;
  $("who-role").textContent = roleLabel(user.role);
  $("login-form").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").focus();
}

function showSignedOut() {
  $("fd-csrf").setAttribute("content", "");
  $("signed-in").hidden = true;
  $("login-form").hidden = false;
  $("password").value = "";
  $("email").focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $("sign-in");
  button.disabled = true;
  say(messages.signing_in);
  try {
    const response = await fetch(`${API}/login`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    if (response.ok) {
      const body = await response.json();
      say("");
      showSignedIn(body.user, body.csrf_token);
      window.location.assign(nextPage());
    } else if (response.status === 429) {
      const seconds = response.headers.get("Retry-After") || "60";
      say(messages.too_many.replace("{seconds}", seconds), true);
    } else if (response.status === 401 || response.status === 422) {
      say(messages.wrong_credentials, true);
      $("password").select();
    } else {
      say(messages.failed, true);
    }
  } catch {
    say(messages.failed, true);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  const csrf = $("fd-csrf").getAttribute("content") || "";
  try {
    const response = await fetch(`${API}/logout`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf },
    });
    if (!response.ok && response.status !== 401) {
      say(messages.failed, true);
      return;
    }
  } catch {
    say(messages.failed, true);
    return;
  }
  showSignedOut();
  say(messages.signed_out);
}

$("login-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
