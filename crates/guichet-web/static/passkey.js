// guichet: security keys and passkeys (WebAuthn). Every form marked data-passkey stays
// hidden unless this browser can use a key; the rest of each page works without this
// script. A form's data-begin route hands out the options, its action takes the answer.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function decode(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); }).buffer;
  }

  function encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    bytes.forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function post(url, fields) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      body: new URLSearchParams(fields),
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (ignored) {
      answer = {};
    }
    if (!response.ok) {
      throw new Error(answer.error || "La clé n'a pas pu être utilisée. Rechargez la page et recommencez.");
    }
    return answer;
  }

  function creation(options) {
    const key = options.publicKey;
    key.challenge = decode(key.challenge);
    key.user.id = decode(key.user.id);
    (key.excludeCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return { publicKey: key };
  }

  function request(options) {
    const key = options.publicKey;
    key.challenge = decode(key.challenge);
    (key.allowCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return { publicKey: key };
  }

  function attestation(credential) {
    const response = credential.response;
    return JSON.stringify({
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: encode(response.attestationObject),
        clientDataJSON: encode(response.clientDataJSON),
        transports: response.getTransports ? response.getTransports() : [],
      },
      extensions: {},
    });
  }

  function assertion(credential) {
    const response = credential.response;
    return JSON.stringify({
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: encode(response.authenticatorData),
        clientDataJSON: encode(response.clientDataJSON),
        signature: encode(response.signature),
        userHandle: response.userHandle ? encode(response.userHandle) : null,
      },
      extensions: {},
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.hidden = false;
    const message = form.querySelector("[data-message]");
    const button = form.querySelector("button");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      button.disabled = true;
      message.textContent = "Suivez les indications de votre navigateur ou de votre clé…";
      try {
        const token = form.querySelector("input[name=csrf_token]").value;
        const begun = await post(form.dataset.begin, { csrf_token: token });
        const options = JSON.parse(begun.options);
        let answer;
        if (form.dataset.passkey === "register") {
          answer = attestation(await navigator.credentials.create(creation(options)));
        } else {
          answer = assertion(await navigator.credentials.get(request(options)));
        }
        const fields = Object.fromEntries(new FormData(form));
        fields.ceremony = begun.ceremony;
        fields.credential = answer;
        const done = await post(form.action, fields);
        window.location.assign(done.redirect);
      } catch (error) {
        message.textContent = error && error.name === "NotAllowedError"
          ? "L'opération a été annulée ou a expiré. Vous pouvez recommencer."
          : (error && error.message) || "La clé n'a pas pu être utilisée.";
        button.disabled = false;
      }
    });
  });
})();
