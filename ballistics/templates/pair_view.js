/* The pair view of ballistics: two registered surfaces in shaded relief, side by side or
 * overlaid with a split line, under a light the examiner turns, with the cells and a true scale
 * bar. Everything runs here, from heights embedded in the page (quantised, base64): no network.
 * The shading is ballistics/relief.py's formula: brightness max(0, n . l), n the normal from
 * central differences of the heights (times the vertical exaggeration), l the unit vector towards
 * a light at azimuth az (clockwise from the top) and elevation el: (sin az cos el, -cos az cos el, sin el).
 */
(function () {
  "use strict";
  if (window.BallisticsPairView) {
    return;
  }
  var UNMEASURED = [217, 221, 227];
  var CONGRUENT = "#1b9e77";
  var OTHER = "#d95f02";
  var SCALE_BARS_UM = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
  var GAP = 12;

  function decodeHeights(map) {
    var bytes = atob(map.data);
    var n = map.width * map.height;
    var out = new Float32Array(n);
    var step = (map.high_um - map.low_um) / 65534;
    for (var i = 0; i < n; i++) {
      var q = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
      out[i] = q === 0 ? NaN : map.low_um + (q - 1) * step;
    }
    return out;
  }

  function gradient(z, w, h, spacing, axis) {
    var g = new Float32Array(w * h);
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var i = y * w + x;
        if (z[i] !== z[i]) {
          continue;
        }
        var hasBefore = axis === 0 ? x > 0 : y > 0;
        var hasAfter = axis === 0 ? x < w - 1 : y < h - 1;
        var d = axis === 0 ? 1 : w;
        var before = hasBefore ? z[i - d] : NaN;
        var after = hasAfter ? z[i + d] : NaN;
        hasBefore = before === before;
        hasAfter = after === after;
        var v = 0;
        if (hasBefore && hasAfter) {
          v = (after - before) / 2;
        } else if (hasAfter) {
          v = after - z[i];
        } else if (hasBefore) {
          v = z[i] - before;
        }
        g[i] = v / spacing;
      }
    }
    return g;
  }

  function Surface(map, exaggeration) {
    this.width = map.width;
    this.height = map.height;
    this.z = decodeHeights(map);
    this.gx = gradient(this.z, map.width, map.height, map.spacing_um, 0);
    this.gy = gradient(this.z, map.width, map.height, map.spacing_um, 1);
    this.exaggeration = exaggeration;
    this.canvas = document.createElement("canvas");
    this.canvas.width = map.width;
    this.canvas.height = map.height;
  }

  Surface.prototype.shade = function (azimuthDeg, elevationDeg) {
    var az = (azimuthDeg * Math.PI) / 180;
    var el = (elevationDeg * Math.PI) / 180;
    var lx = Math.sin(az) * Math.cos(el);
    var ly = -Math.cos(az) * Math.cos(el);
    var lz = Math.sin(el);
    var k = this.exaggeration;
    var ctx = this.canvas.getContext("2d");
    var image = ctx.createImageData(this.width, this.height);
    var px = image.data;
    for (var i = 0; i < this.z.length; i++) {
      var o = 4 * i;
      if (this.z[i] !== this.z[i]) {
        px[o] = UNMEASURED[0];
        px[o + 1] = UNMEASURED[1];
        px[o + 2] = UNMEASURED[2];
        px[o + 3] = 255;
        continue;
      }
      var gx = k * this.gx[i];
      var gy = k * this.gy[i];
      var b = (-gx * lx - gy * ly + lz) / Math.sqrt(gx * gx + gy * gy + 1);
      var v = Math.round(255 * Math.max(0, Math.min(1, b)));
      px[o] = v;
      px[o + 1] = v;
      px[o + 2] = v;
      px[o + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  };

  function View(root) {
    this.root = root;
    this.data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    var d = this.data;
    this.reference = new Surface(d.reference, d.light.exaggeration);
    this.questioned = new Surface(d.questioned, d.light.exaggeration);
    this.canvas = root.querySelector("canvas.pv-canvas");
    this.controls = {
      mode: root.querySelectorAll("input.pv-mode"),
      azimuth: root.querySelector("input.pv-azimuth"),
      elevation: root.querySelector("input.pv-elevation"),
      cells: root.querySelector("input.pv-cells"),
      split: root.querySelector("input.pv-split"),
      zoomIn: root.querySelector("button.pv-zoom-in"),
      zoomOut: root.querySelector("button.pv-zoom-out"),
      fit: root.querySelector("button.pv-fit"),
    };
    this.zoom = 1;
    this.centre = [d.reference.width / 2, d.reference.height / 2];
    this.split = 0.5;
    this.mode = "side";
    this.drag = null;
    this.bind();
    this.relight();
  }

  View.prototype.bind = function () {
    var self = this;
    var c = this.controls;
    Array.prototype.forEach.call(c.mode, function (input) {
      input.addEventListener("change", function () {
        if (input.checked) {
          self.mode = input.value;
          self.root.querySelector(".pv-split-control").hidden = self.mode !== "overlay";
          self.draw();
        }
      });
    });
    c.azimuth.addEventListener("input", function () { self.relight(); });
    c.elevation.addEventListener("input", function () { self.relight(); });
    c.cells.addEventListener("change", function () { self.draw(); });
    c.split.addEventListener("input", function () {
      self.split = Number(c.split.value) / 100;
      self.draw();
    });
    c.zoomIn.addEventListener("click", function () { self.setZoom(self.zoom * 1.5); });
    c.zoomOut.addEventListener("click", function () { self.setZoom(self.zoom / 1.5); });
    c.fit.addEventListener("click", function () {
      self.centre = [self.data.reference.width / 2, self.data.reference.height / 2];
      self.setZoom(1);
    });
    this.canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      var rect = self.canvas.getBoundingClientRect();
      self.zoomAt(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - rect.left, event.clientY - rect.top);
    }, { passive: false });
    this.canvas.addEventListener("pointerdown", function (event) { self.pointerDown(event); });
    this.canvas.addEventListener("pointermove", function (event) { self.pointerMove(event); });
    this.canvas.addEventListener("pointerup", function () { self.drag = null; });
    this.canvas.addEventListener("pointercancel", function () { self.drag = null; });
    window.addEventListener("resize", function () { self.draw(); });
  };

  View.prototype.zoomAt = function (factor, x, y) {
    // keep the point of the surface under the pointer where it is
    var L = this.lastLayout;
    var px = this.mode === "side" && x > L.panelWidth + GAP / 2 ? x - L.panelWidth - GAP : x;
    var point = [this.centre[0] + (px - L.panelWidth / 2) / L.scale, this.centre[1] + (y - L.height / 2) / L.scale];
    var zoom = Math.max(1, Math.min(32, this.zoom * factor));
    var scale = (L.scale / this.zoom) * zoom;
    this.centre = [point[0] - (px - L.panelWidth / 2) / scale, point[1] - (y - L.height / 2) / scale];
    this.setZoom(zoom);
  };

  View.prototype.setZoom = function (zoom) {
    this.zoom = Math.max(1, Math.min(32, zoom));
    this.draw();
  };

  View.prototype.relight = function () {
    var az = Number(this.controls.azimuth.value);
    var el = Number(this.controls.elevation.value);
    this.reference.shade(az, el);
    this.questioned.shade(az, el);
    this.root.querySelector(".pv-light-value").textContent =
      "light from " + az + "\u00b0 (clockwise from the top), " + el + "\u00b0 above the surface";
    this.draw();
  };

  View.prototype.layout = function () {
    var w = this.data.reference.width;
    var h = this.data.reference.height;
    var width = Math.max(320, Math.floor(this.canvas.parentNode.clientWidth || 900));
    var panels = this.mode === "side" ? 2 : 1;
    var panelWidth = Math.floor((width - (panels - 1) * GAP) / panels);
    var fit = panelWidth / w;
    var height = Math.min(Math.round(h * fit), Math.round(window.innerHeight * 0.75) || 600);
    fit = Math.min(fit, height / h);
    return { width: width, height: height, panels: panels, panelWidth: panelWidth, scale: fit * this.zoom };
  };

  View.prototype.toScreen = function (L, x, y) {
    return [L.panelWidth / 2 + (x - this.centre[0]) * L.scale, L.height / 2 + (y - this.centre[1]) * L.scale];
  };

  View.prototype.drawPanel = function (ctx, L, left, surface, cells, clip) {
    ctx.save();
    ctx.translate(left, 0);
    ctx.beginPath();
    ctx.rect(clip[0], 0, clip[1] - clip[0], L.height);
    ctx.clip();
    var o = this.toScreen(L, 0, 0);
    ctx.imageSmoothingEnabled = L.scale < 1;
    ctx.drawImage(surface.canvas, o[0], o[1], surface.width * L.scale, surface.height * L.scale);
    if (cells) {
      for (var k = 0; k < this.data.cells.length; k++) {
        var cell = this.data.cells[k];
        var box = cells === "reference" ? cell.reference : cell.questioned;
        var a = this.toScreen(L, box[0], box[1]);
        ctx.strokeStyle = cell.congruent ? CONGRUENT : OTHER;
        ctx.lineWidth = cell.congruent ? 2.5 : 1;
        ctx.strokeRect(a[0], a[1], (box[2] - box[0]) * L.scale, (box[3] - box[1]) * L.scale);
      }
    }
    ctx.restore();
  };

  View.prototype.scaleBar = function (ctx, L) {
    var umPerPixel = this.data.reference.spacing_um / L.scale;
    var length = SCALE_BARS_UM[0];
    for (var i = 0; i < SCALE_BARS_UM.length; i++) {
      if (SCALE_BARS_UM[i] / umPerPixel <= L.panelWidth / 4) {
        length = SCALE_BARS_UM[i];
      }
    }
    var pixels = length / umPerPixel;
    var label = length >= 1000 ? length / 1000 + " mm" : length + " \u00b5m";
    var x = L.width - pixels - 16;
    var y = L.height - 18;
    ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(x - 8, y - 22, pixels + 16, 34);
    ctx.fillStyle = "#000";
    ctx.fillRect(x, y, pixels, 5);
    ctx.font = "13px sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(label, x + pixels / 2, y - 6);
    var out = this.root.querySelector(".pv-scale-value");
    out.textContent = label + " = " + pixels.toFixed(1) + " screen pixels (zoom \u00d7" + this.zoom.toFixed(2) + ")";
    out.setAttribute("data-um-per-pixel", umPerPixel.toPrecision(6));
  };

  View.prototype.draw = function () {
    var L = this.layout();
    this.lastLayout = L;
    var canvas = this.canvas;
    canvas.width = L.width;
    canvas.height = L.height;
    canvas.style.width = L.width + "px";
    canvas.style.height = L.height + "px";
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, L.width, L.height);
    var cells = this.controls.cells.checked;
    if (this.mode === "side") {
      this.drawPanel(ctx, L, 0, this.reference, cells && "reference", [0, L.panelWidth]);
      this.drawPanel(ctx, L, L.panelWidth + GAP, this.questioned, cells && "questioned", [0, L.panelWidth]);
      label(ctx, "reference", 8, "left");
      label(ctx, "questioned, registered onto the reference", L.panelWidth + GAP + 8, "left");
    } else {
      var at = Math.round(this.split * L.panelWidth);
      this.drawPanel(ctx, L, 0, this.reference, cells && "reference", [0, at]);
      this.drawPanel(ctx, L, 0, this.questioned, cells && "questioned", [at, L.panelWidth]);
      ctx.fillStyle = "#ffb000";
      ctx.fillRect(at - 1.5, 0, 3, L.height);
      label(ctx, "reference", at - 8, "right");
      label(ctx, "questioned", at + 8, "left");
    }
    this.scaleBar(ctx, L);
    this.root.setAttribute("data-rendered", String(Number(this.root.getAttribute("data-rendered") || 0) + 1));
  };

  View.prototype.pointerDown = function (event) {
    var L = this.lastLayout;
    var rect = this.canvas.getBoundingClientRect();
    var x = event.clientX - rect.left;
    var y = event.clientY - rect.top;
    if (this.mode === "overlay" && Math.abs(x - this.split * L.panelWidth) <= 12) {
      this.drag = { kind: "split" };
    } else {
      this.drag = { kind: "pan", x: x, y: y, centre: this.centre.slice() };
    }
    this.canvas.setPointerCapture(event.pointerId);
  };

  View.prototype.pointerMove = function (event) {
    if (!this.drag) {
      return;
    }
    var L = this.lastLayout;
    var rect = this.canvas.getBoundingClientRect();
    var x = event.clientX - rect.left;
    var y = event.clientY - rect.top;
    if (this.drag.kind === "split") {
      this.split = Math.max(0, Math.min(1, x / L.panelWidth));
      this.controls.split.value = String(Math.round(this.split * 100));
    } else {
      this.centre = [this.drag.centre[0] - (x - this.drag.x) / L.scale, this.drag.centre[1] - (y - this.drag.y) / L.scale];
    }
    this.draw();
  };

  function label(ctx, text, x, align) {
    ctx.font = "13px sans-serif";
    var width = ctx.measureText(text).width;
    var left = align === "right" ? x - width : x;
    ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(left - 4, 4, width + 8, 20);
    ctx.fillStyle = "#000";
    ctx.textAlign = "left";
    ctx.fillText(text, left, 19);
  }

  function mount(root) {
    if (!root || root.pairView || root.offsetParent === null) {
      return root ? root.pairView : undefined;
    }
    root.pairView = new View(root);
    return root.pairView;
  }

  function mountAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-pair-view]"), mount);
  }

  window.BallisticsPairView = { mount: mount, mountAll: mountAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
