// The demo shop's own script: the account link, sign-in, logout, add to cart, and the demo
// footer (the current UID and device id; "come back another day"). The tracking calls are the
// seed's (tracking-users.txt): web_event.track(...) and web_event.resetAnonymousUId().
(function () {
  var USER = "demo_shop_user"; // the shop's own "session": who signed in, for the header

  function signedIn() {
    try { return JSON.parse(localStorage.getItem(USER) || "null"); } catch (e) { return null; }
  }

  // Calls made before cdp.js has loaded are queued by the snippet; before leaving the page, wait
  // for the SDK so that the queue is not lost with the page.
  function whenReady(done) {
    var until = Date.now() + 5000;
    (function poll() {
      if ((window.web_event && window.web_event.version) || Date.now() > until) done();
      else setTimeout(poll, 50);
    })();
  }

  function leaveTo(url) {
    whenReady(function () {
      var go = function () { location.href = url; };
      var flushed = window.web_event.flush ? window.web_event.flush() : Promise.resolve();
      Promise.race([flushed, new Promise(function (r) { setTimeout(r, 1500); })]).then(go, go);
    });
  }

  // ---- header: Sign in, or the customer's name and Log out
  var account = document.getElementById("account");
  var user = signedIn();
  if (account) {
    if (user) {
      account.innerHTML = '<span>Hi, <strong class="who"></strong></span> <a href="#" id="logout">Log out</a>';
      account.querySelector(".who").textContent = user.name || user.email;
    } else {
      account.innerHTML = '<a href="signin.html" id="signin-link">Sign in</a>';
    }
  }

  // ---- logout: the seed's "On Logout"
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t && t.id === "logout") {
      ev.preventDefault();
      web_event.resetAnonymousUId();
      localStorage.removeItem(USER);
      leaveTo("index.html?bye=1");
    }
  });

  // ---- add to cart: a custom event with items
  var add = document.querySelector("[data-add-to-cart]");
  if (add) {
    add.addEventListener("click", function () {
      web_event.track("cart", "add_to_cart", {
        items: [{ sku: add.dataset.sku, name: add.dataset.name, price: Number(add.dataset.price), currency: "GBP", quantity: 1 }]
      });
      var n = document.getElementById("added");
      n.hidden = false;
      n.textContent = add.dataset.name + " is in your cart (event cart / add_to_cart sent).";
    });
  }

  // ---- sign in: the seed's "On Login", with the email normalized before it is hashed
  var form = document.getElementById("signin-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      // The customer id must be derived the same way everywhere (see sdk/web/README.md):
      // at least trimmed and lowercased, as cdp.customer_id_for_email does.
      var email = form.elements.email.value.trim().toLowerCase();
      var name = form.elements.fullname.value.trim();
      var f = window._cdpEventFunction;
      web_event.track("user", "sign_in", {
        dims: { customers: { customer_id: f.md5(email), name: name, email: email } },
        extra: {
          identify_id: f.md5(email),
          identify_time: f._cdpGetLeadTime(),
          identify_event: "user_sign_in",
          identify_type: "exact"
        }
      });
      localStorage.setItem(USER, JSON.stringify({ name: name, email: email }));
      form.querySelector("button").disabled = true;
      leaveTo("index.html?welcome=1");
    });
  }

  // ---- greetings
  var greet = document.getElementById("greeting");
  if (greet) {
    if (/welcome=1/.test(location.search) && user) {
      greet.hidden = false;
      greet.textContent = "Welcome, " + (user.name || user.email) + ": you are signed in. Your earlier visits now belong to your customer profile (see the dashboard).";
    } else if (/bye=1/.test(location.search)) {
      greet.hidden = false;
      greet.textContent = "You are logged out: this browser has a new anonymous UID from now on (the device id stays).";
    }
  }

  // ---- the demo footer: what the SDK knows, and "come back another day"
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  whenReady(function () {
    var uid = document.getElementById("demo-uid");
    var did = document.getElementById("demo-did");
    if (uid && window.web_event.getUid) uid.textContent = window.web_event.getUid() || "(none)";
    if (did) did.textContent = cookie("_cdp_did") || localStorage.getItem("_cdp_did") || "(none)";
  });
  var newDay = document.getElementById("demo-new-day");
  if (newDay) {
    newDay.addEventListener("click", function () {
      // As when the UID cookie expired (Safari keeps script cookies 7 days) or was cleaned: the
      // next page gets a new UID. The device id survives, which is how the customer's sign-in
      // later finds this visit (cdp.merges reason device_id).
      document.cookie = "_cdp_uid=; path=/; max-age=0";
      localStorage.removeItem("_cdp_uid");
      localStorage.removeItem("_cdp_ses");
      localStorage.removeItem(USER);
      leaveTo("index.html");
    });
  }
})();
