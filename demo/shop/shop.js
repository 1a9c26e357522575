// The demo shop's own script: the pages' header and demo footer, the catalog (the home page's
// bestsellers, product.html?sku=...), the account link, sign-in, logout, add to cart, and the
// demo footer's UID and device id and "come back another day". The tracking calls are the
// seed's (tracking-users.txt): web_event.track(...) and web_event.resetAnonymousUId().
(function () {
  var USER = "demo_shop_user"; // the shop's own "session": who signed in, for the header
  var CATALOG = [
    { sku: "RUN-42", art: "shoe", label: "RUN", name: "Trail running shoe", price: 89,
      text: "Grippy, light and waterproof: for muddy Sunday runs and long summer trails." },
    { sku: "JKT-7", art: "jacket", label: "JKT", name: "Rain jacket", price: 120,
      text: "Three layers, taped seams, a hood that stays put. Packs into its own pocket." },
    { sku: "BTL-1", art: "bottle", label: "BTL", name: "Steel water bottle", price: 18,
      text: "Keeps water cold for a day and tea hot for half of one. Dents, never leaks." }
  ];
  var link = function (p) { return "product.html?sku=" + encodeURIComponent(p.sku); };
  var html = function (text) {
    var e = document.createElement("span");
    e.textContent = String(text);
    return e.innerHTML;
  };
  var fill = function (id, markup) {
    var e = document.getElementById(id);
    if (e) e.innerHTML = markup;
    return e;
  };

  // ---- the pages' common parts
  fill("site", '<div class="bar"><a class="logo" href="index.html">Northwind<span>Outdoors</span></a><nav>' +
    CATALOG.map(function (p) { return '<a href="' + link(p) + '">' + html(p.name) + "</a>"; }).join("") +
    '</nav><div class="account" id="account"></div></div>');
  fill("demo", '<div class="bar"><strong>cdp_identity demo</strong> · this browser\'s UID <code id="demo-uid">…</code> · ' +
    'device id <code id="demo-did">…</code><div class="row">' +
    '<button type="button" id="demo-new-day" title="Forgets this browser\'s UID, as an expired or cleaned cookie would; ' +
    'the device id stays">Come back another day (new UID)</button>' +
    '<a href="/dashboard" target="_blank" rel="noopener">Open the dashboard</a>' +
    '<span class="muted">Day 1: browse · Day 3: "come back another day", browse again · Day 7: sign in</span></div></div>');
  fill("bestsellers", CATALOG.map(function (p) {
    return '<article class="card"><a href="' + link(p) + '"><div class="art ' + p.art + '">' + p.label + "</div>" +
      '<div class="body"><h3>' + html(p.name) + '</h3><div class="muted">' + p.sku + '</div><div class="price">£' + p.price +
      "</div></div></a></article>";
  }).join(""));
  var sku = (location.search.match(/[?&]sku=([^&]*)/) || [])[1];
  var product = CATALOG.filter(function (p) { return p.sku === decodeURIComponent(sku || ""); })[0];
  if (document.getElementById("product")) {
    document.title = (product ? product.name : "Not found") + " · Northwind Outdoors";
    fill("product", product
      ? '<div class="art ' + product.art + '">' + product.label + "</div><div><h1>" + html(product.name) + "</h1>" +
        '<p class="muted">' + product.sku + '</p><p class="price">£' + product.price + "</p><p>" + html(product.text) + "</p>" +
        '<button type="button" data-add-to-cart data-sku="' + product.sku + '" data-name="' + html(product.name) + '" data-price="' +
        product.price + '">Add to cart</button><div class="notice" id="added" role="status" hidden></div></div>'
      : '<p>No such product. <a href="index.html">Back to the shop</a></p>');
  }

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
