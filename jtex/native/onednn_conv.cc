// jtex's 3x3, stride-1 VGG convolutions on CPU through oneDNN (2.x API), as XLA FFI custom calls.
//
// Why: XLA:CPU runs these convolutions directly (9 multiply-adds per output and channel pair) at close
// to the CPU's peak; oneDNN's Winograd F(4x4, 3x3) kernels need 2.25-4x fewer multiplications and run
// VGG's 3x3 layers about twice as fast on AVX-512 CPUs. jtex/onednn.py compiles this file once (it
// needs a C++ compiler and oneDNN's headers) and falls back to XLA's convolutions when it cannot.
//
// Layouts. An activation is either "nhwc" (N, H, W, C) or "blocked": oneDNN's nChw16c, which jtex holds
// as a float32 array of shape (N * C/16, H, W, 16). A call's output has its input's layout. The network's
// first layer (3 input channels) runs nhwc -> nhwc with the direct algorithm (oneDNN has no fast kernel
// from nhwc to blocked or back for it: its reference one took 7 s at 512x512); every later layer runs
// blocked -> blocked, so consecutive layers hand their maps to each other with no reorder. Leading
// dimensions beyond these (vmap's batch axis) are folded into N; the kernel must then be unbatched.
//
//   jtex_onednn_conv_fwd(x, kernel HWIO, bias) -> y        attrs: pad, cin, blocked, winograd
//   jtex_onednn_conv_bwd(dy, kernel HWIO) -> dx            attrs: pad, cin, blocked, winograd
//
// pad is the zero padding on every side (1: 'same', 0: 'valid'). With winograd set, a Winograd
// primitive is used where oneDNN has one for the shape, else the direct one. Primitives are cached per
// shape; the kernel is reordered into the primitive's own layout on each call (0.1-0.3 ms for VGG's
// 3x3 kernels up to 256 channels here).
#include <cstdint>
#include <cstdlib>
#include <new>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::algorithm;
using dnnl::engine;
using dnnl::memory;
using dnnl::stream;
using dt = memory::data_type;
using tag = memory::format_tag;

namespace {

// Process-lifetime objects, never destroyed: oneDNN's own globals may be gone when static destructors run.
engine& cpu() {
  static engine* e = new engine(engine::kind::cpu, 0);
  return *e;
}

struct Shape {
  int64_t n, h, w, cin, cout, ho, wo, pad;
  bool blocked;
  bool operator<(const Shape& o) const {
    return std::tie(n, h, w, cin, cout, pad, blocked) < std::tie(o.n, o.h, o.w, o.cin, o.cout, o.pad, o.blocked);
  }
};

memory::desc act(int64_t n, int64_t c, int64_t h, int64_t w, bool blocked) {
  return memory::desc({n, c, h, w}, dt::f32, blocked ? tag::nChw16c : tag::nhwc);
}
memory::desc hwio(const Shape& s) { return memory::desc({s.cout, s.cin, 3, 3}, dt::f32, tag::hwio); }

// Scratch memory is ours, not oneDNN's process-wide "global scratchpad": with that, a run of several
// Winograd primitives of different sizes corrupted the heap (oneDNN 2.6.3, one or two OpenMP threads).
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A per-thread scratch buffer for a primitive's scratchpad, grown as needed, 64-byte aligned.
memory scratch(const memory::desc& md) {
  thread_local std::unique_ptr<char, decltype(&std::free)> buf(nullptr, &std::free);
  thread_local size_t size = 0;
  size_t need = (md.get_size() + 63) / 64 * 64;
  if (need > size) {
    buf.reset(static_cast<char*>(std::aligned_alloc(64, need)));
    size = buf ? need : 0;
    if (!buf) throw std::bad_alloc();
  }
  return memory(md, cpu(), buf.get());
}

dnnl::convolution_forward::primitive_desc forward_pd(const Shape& s, algorithm alg) {
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, alg, act(s.n, s.cin, s.h, s.w, s.blocked),
                                    memory::desc({s.cout, s.cin, 3, 3}, dt::f32, tag::any),
                                    memory::desc({s.cout}, dt::f32, tag::x), act(s.n, s.cout, s.ho, s.wo, s.blocked),
                                    {1, 1}, {s.pad, s.pad}, {s.pad, s.pad});
  return dnnl::convolution_forward::primitive_desc(d, user_scratchpad(), cpu());
}

dnnl::convolution_backward_data::primitive_desc backward_pd(const Shape& s, algorithm alg) {
  dnnl::convolution_backward_data::desc d(alg, act(s.n, s.cin, s.h, s.w, s.blocked),
                                          memory::desc({s.cout, s.cin, 3, 3}, dt::f32, tag::any),
                                          act(s.n, s.cout, s.ho, s.wo, s.blocked), {1, 1}, {s.pad, s.pad},
                                          {s.pad, s.pad});
  return dnnl::convolution_backward_data::primitive_desc(d, user_scratchpad(), cpu(), forward_pd(s, alg));
}

// The Winograd primitive where oneDNN has one for this shape (and it was asked for), else the direct one.
template <typename PD, typename Make>
PD choose(const Shape& s, bool winograd, Make make) {
  if (winograd) {
    try {
      return make(s, algorithm::convolution_winograd);
    } catch (const dnnl::error&) {
    }
  }
  return make(s, algorithm::convolution_direct);
}

template <typename P>
std::shared_ptr<P> cached(const Shape& s, bool winograd, std::map<std::pair<Shape, bool>, std::shared_ptr<P>>& cache,
                          std::mutex& mu) {
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{s, winograd}];
  if (!slot) slot = std::make_shared<P>(s, winograd);
  return slot;
}

struct Forward {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  Forward(const Shape& s, bool winograd)
      : pd(choose<dnnl::convolution_forward::primitive_desc>(s, winograd, forward_pd)), prim(pd) {}
};

struct Backward {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  Backward(const Shape& s, bool winograd)
      : pd(choose<dnnl::convolution_backward_data::primitive_desc>(s, winograd, backward_pd)), prim(pd) {}
};

std::mutex& mu = *new std::mutex;
auto& forward_cache = *new std::map<std::pair<Shape, bool>, std::shared_ptr<Forward>>;
auto& backward_cache = *new std::map<std::pair<Shape, bool>, std::shared_ptr<Backward>>;

// The kernel in the primitive's layout (a reorder, and for Winograd its transform).
memory weights(const memory::desc& want, const Shape& s, float* user, stream& st) {
  memory given(hwio(s), cpu(), user);
  if (want == given.get_desc()) return given;
  memory m(want, cpu());
  dnnl::reorder(given, m).execute(st, given, m);
  return m;
}

int64_t folded(ffi::Span<const int64_t> d, int64_t inner) {
  int64_t rows = 1;
  for (size_t i = 0; i + inner < d.size(); ++i) rows *= d[i];
  return rows;
}

// Shapes from the buffers: x is (..., H, W, C) or blocked (..., H, W, 16); the kernel (1.., 3, 3, Cin, Cout).
ffi::Error shape_of(ffi::Span<const int64_t> x, ffi::Span<const int64_t> k, ffi::Span<const int64_t> y,
                    int64_t pad, int64_t cin, bool blocked, Shape* s) {
  if (x.size() < 4 || k.size() < 4 || y.size() < 4) return ffi::Error::InvalidArgument("jtex onednn: rank < 4");
  for (size_t i = 0; i + 4 < k.size(); ++i)
    if (k[i] != 1) return ffi::Error::InvalidArgument("jtex onednn: batched kernels are not supported");
  int64_t kc = k[k.size() - 2], cout = k[k.size() - 1];
  if (k[k.size() - 4] != 3 || k[k.size() - 3] != 3 || kc != cin || cout % 16 != 0 || (blocked && cin % 16 != 0))
    return ffi::Error::InvalidArgument("jtex onednn: unsupported kernel shape");
  int64_t rows = folded(x, 3), groups = blocked ? cin / 16 : 1;
  if (x[x.size() - 1] != (blocked ? 16 : cin) || rows % groups != 0)
    return ffi::Error::InvalidArgument("jtex onednn: input does not match cin");
  *s = Shape{rows / groups, x[x.size() - 3], x[x.size() - 2], cin, cout, 0, 0, pad, blocked};
  s->ho = s->h + 2 * pad - 2;
  s->wo = s->w + 2 * pad - 2;
  if (s->ho < 1 || s->wo < 1 || y[y.size() - 3] != s->ho || y[y.size() - 2] != s->wo ||
      y[y.size() - 1] != (blocked ? 16 : cout) || folded(y, 3) != s->n * (blocked ? cout / 16 : 1))
    return ffi::Error::InvalidArgument("jtex onednn: output shape does not match");
  return ffi::Error::Success();
}

// Runs body, turning oneDNN's and allocation errors into FFI errors (XLA raises them in Python).
template <typename Body>
ffi::Error guarded(const char* what, Body body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("jtex onednn ") + what + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error::Internal(std::string("jtex onednn ") + what + ": out of memory");
  }
  return ffi::Error::Success();
}

// Executes a cached primitive on args plus the kernel (in the primitive's layout) and our scratchpad; waits.
template <typename P>
void run(P& p, const Shape& s, float* kernel, std::unordered_map<int, memory> args) {
  stream st(cpu());
  args[DNNL_ARG_WEIGHTS] = weights(p.pd.weights_desc(), s, kernel, st);
  args[DNNL_ARG_SCRATCHPAD] = scratch(p.pd.scratchpad_desc());
  p.prim.execute(st, args);
  st.wait();
}

ffi::Error ConvForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> b,
                       ffi::ResultBuffer<ffi::F32> y, int64_t pad, int64_t cin, bool blocked, bool winograd) {
  Shape s;
  if (auto e = shape_of(x.dimensions(), k.dimensions(), y->dimensions(), pad, cin, blocked, &s); e.failure())
    return e;
  return guarded("forward", [&] {
    auto f = cached(s, winograd, forward_cache, mu);
    run(*f, s, k.typed_data(),
        {{DNNL_ARG_SRC, memory(f->pd.src_desc(), cpu(), x.typed_data())},
         {DNNL_ARG_BIAS, memory(f->pd.bias_desc(), cpu(), b.typed_data())},
         {DNNL_ARG_DST, memory(f->pd.dst_desc(), cpu(), y->typed_data())}});
  });
}

ffi::Error ConvBackward(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> k, ffi::ResultBuffer<ffi::F32> dx,
                        int64_t pad, int64_t cin, bool blocked, bool winograd) {
  Shape s;
  if (auto e = shape_of(dx->dimensions(), k.dimensions(), dy.dimensions(), pad, cin, blocked, &s); e.failure())
    return e;
  return guarded("backward", [&] {
    auto bw = cached(s, winograd, backward_cache, mu);
    run(*bw, s, k.typed_data(),
        {{DNNL_ARG_DIFF_DST, memory(bw->pd.diff_dst_desc(), cpu(), dy.typed_data())},
         {DNNL_ARG_DIFF_SRC, memory(bw->pd.diff_src_desc(), cpu(), dx->typed_data())}});
  });
}

}  // namespace

// Both handlers' attributes, in the order of their C++ parameters.
template <typename Binding>
auto attributes(Binding binding) {
  return std::move(binding)
      .template Attr<int64_t>("pad")
      .template Attr<int64_t>("cin")
      .template Attr<bool>("blocked")
      .template Attr<bool>("winograd");
}

using F32 = ffi::Buffer<ffi::F32>;
XLA_FFI_DEFINE_HANDLER_SYMBOL(JtexOnednnConvFwd, ConvForward,
                              attributes(ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JtexOnednnConvBwd, ConvBackward,
                              attributes(ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>()));

extern "C" int jtex_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
