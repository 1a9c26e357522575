// The SDK's loader snippet (sdk/web/snippet.html) and the page config, shared by the shop's
// pages. A real site pastes the snippet into the <head> of its layout template; this static demo
// has no templates, so its pages load this file instead (synchronously, before anything tracks).
// demo/web.sh starts the collector, which serves this shop and cdp.js, so the endpoint is the
// page's own origin.
var _portalId = "default";
var _propId = "demo-shop";
var _cdp365Analytics = {
  endpoint: location.origin,
  writeKey: "wk_demo_shop",
  flush_interval: 1000, // send within a second, so that the dashboard shows it at once
  default_event: 1
};
(function (w, d, src) {
  if (w.web_event) return;
  var q = [];
  var stub = function (m) { return function () { q.push([m, [].slice.call(arguments), Date.now()]); }; };
  w.web_event = { q: q, t: Date.now(), track: stub("track"), resetAnonymousUId: stub("resetAnonymousUId"),
                  optOut: stub("optOut"), optIn: stub("optIn") };
  w._cdpEventFunction = {
    md5: function (v) { return { _cdp: "md5", v: String(v) }; },
    _cdpGetLeadTime: function () { return { _cdp: "time", v: Date.now() }; }
  };
  var s = d.createElement("script");
  s.async = true;
  s.src = src;
  d.head.appendChild(s);
})(window, document, "cdp.js");
