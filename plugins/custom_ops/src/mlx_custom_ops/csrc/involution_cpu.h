// Involution CPU kernels shared by the Paddle and the PyTorch operator.
//
//   out[b, c, ho, wo] = sum_{kh, kw} w[b, g(c), kh*K + kw, ho, wo] * x[b, c, ho*S - P + kh, wo*S - P + kw]
//
// x: [B, C, H, W], w: [B, G, K*K, Ho, Wo], out: [B, C, Ho, Wo], g(c) = c / (C / G), P = (K - 1) / 2.
// One task is one (batch, group) pair, so tasks never write the same memory and need no atomics.
// Inside a task the loop order is output row -> channel -> tap -> output column: the K*K weight
// rows of one output row (K*K*Wo values) stay in L1 and are reused by every channel of the group,
// and the innermost loop is a contiguous, branch-free multiply-add the compiler vectorises
// (for stride 1; stride 2 reads every other input column).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

namespace mlx_involution {

struct Geometry {
  int64_t B, C, H, W, G, K, S, P, Ho, Wo;
  int64_t channels_per_group() const { return C / G; }
};

// Output indices o in [lo, hi) whose input index o*S - P + d lies inside [0, in).
inline void valid_range(int64_t d, const Geometry& g, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  const int64_t a = g.P - d;
  int64_t l = a <= 0 ? 0 : (a + g.S - 1) / g.S;
  const int64_t b = in - 1 + g.P - d;
  int64_t h = b < 0 ? 0 : b / g.S + 1;
  l = std::min(l, out);
  h = std::min(h, out);
  *lo = l;
  *hi = std::max(h, l);
}

template <typename T>
void forward_task_generic(const T* x, const T* w, T* out, const Geometry& g, int64_t task) {
  const int64_t b = task / g.G, grp = task % g.G, cg = g.channels_per_group();
  const int64_t HW = g.H * g.W, OHW = g.Ho * g.Wo, KK = g.K * g.K;
  const T* xg = x + (b * g.C + grp * cg) * HW;
  const T* wg = w + (b * g.G + grp) * KK * OHW;
  T* og = out + (b * g.C + grp * cg) * OHW;
  int64_t wlo[64], whi[64];  // K <= 63 is checked by the callers
  for (int64_t kw = 0; kw < g.K; ++kw) valid_range(kw, g, g.W, g.Wo, &wlo[kw], &whi[kw]);
  for (int64_t ho = 0; ho < g.Ho; ++ho) {
    for (int64_t c = 0; c < cg; ++c) {
      T* orow = og + c * OHW + ho * g.Wo;
      for (int64_t wo = 0; wo < g.Wo; ++wo) orow[wo] = T(0);
      for (int64_t kh = 0; kh < g.K; ++kh) {
        const int64_t ih = ho * g.S - g.P + kh;
        if (ih < 0 || ih >= g.H) continue;
        const T* xrow = xg + c * HW + ih * g.W;
        for (int64_t kw = 0; kw < g.K; ++kw) {
          const T* wrow = wg + (kh * g.K + kw) * OHW + ho * g.Wo;
          const int64_t off = kw - g.P;
          if (g.S == 1) {
            for (int64_t wo = wlo[kw]; wo < whi[kw]; ++wo) orow[wo] += wrow[wo] * xrow[wo + off];
          } else {
            for (int64_t wo = wlo[kw]; wo < whi[kw]; ++wo) orow[wo] += wrow[wo] * xrow[wo * g.S + off];
          }
        }
      }
    }
  }
}

// Both gradients of one (batch, group) task in one pass over the data.
// gx must be zero-initialised by the caller (it is accumulated into); gw is written here.
template <typename T>
void backward_task_generic(const T* gout, const T* x, const T* w, T* gx, T* gw, const Geometry& g, int64_t task) {
  const int64_t b = task / g.G, grp = task % g.G, cg = g.channels_per_group();
  const int64_t HW = g.H * g.W, OHW = g.Ho * g.Wo, KK = g.K * g.K;
  const T* xg = x + (b * g.C + grp * cg) * HW;
  const T* wg = w + (b * g.G + grp) * KK * OHW;
  const T* gog = gout + (b * g.C + grp * cg) * OHW;
  T* gxg = gx ? gx + (b * g.C + grp * cg) * HW : nullptr;
  T* gwg = gw ? gw + (b * g.G + grp) * KK * OHW : nullptr;
  if (gwg)
    for (int64_t i = 0; i < KK * OHW; ++i) gwg[i] = T(0);
  int64_t wlo[64], whi[64];
  for (int64_t kw = 0; kw < g.K; ++kw) valid_range(kw, g, g.W, g.Wo, &wlo[kw], &whi[kw]);
  for (int64_t ho = 0; ho < g.Ho; ++ho) {
    for (int64_t c = 0; c < cg; ++c) {
      const T* gorow = gog + c * OHW + ho * g.Wo;
      for (int64_t kh = 0; kh < g.K; ++kh) {
        const int64_t ih = ho * g.S - g.P + kh;
        if (ih < 0 || ih >= g.H) continue;
        const T* xrow = xg + c * HW + ih * g.W;
        T* gxrow = gxg ? gxg + c * HW + ih * g.W : nullptr;
        for (int64_t kw = 0; kw < g.K; ++kw) {
          const int64_t k = kh * g.K + kw, off = kw - g.P, lo = wlo[kw], hi = whi[kw];
          const T* wrow = wg + k * OHW + ho * g.Wo;
          if (gwg) {
            T* gwrow = gwg + k * OHW + ho * g.Wo;
            if (g.S == 1) {
              for (int64_t wo = lo; wo < hi; ++wo) gwrow[wo] += gorow[wo] * xrow[wo + off];
            } else {
              for (int64_t wo = lo; wo < hi; ++wo) gwrow[wo] += gorow[wo] * xrow[wo * g.S + off];
            }
          }
          if (gxrow) {
            if (g.S == 1) {
              for (int64_t wo = lo; wo < hi; ++wo) gxrow[wo + off] += wrow[wo] * gorow[wo];
            } else {
              for (int64_t wo = lo; wo < hi; ++wo) gxrow[wo * g.S + off] += wrow[wo] * gorow[wo];
            }
          }
        }
      }
    }
  }
}


// ---- Stride-1 kernels (every RedNet layer but the first of each stage) ----------------------------
//
// The generic loops above are branch-free but their rows are short (7-56 columns) and their bounds
// vary per tap, so most of the work runs as scalar epilogues and every tap re-loads and re-stores the
// output row. The stride-1 kernels below instead copy the task's planes once into zero-padded
// scratch planes (P rows/columns of zeros around each plane, each row rounded up to a multiple of
// V columns), after which every tap of every output chunk is the same fixed-length loop: V contiguous
// columns, no bounds, accumulated in registers (acc[..][V] is a local array of compile-time size; at
// -O3 the compiler keeps it in vector registers and turns the i-loops into vector FMAs). Several
// independent accumulators (CB channels or KB taps at once) hide the FMA latency, and each loaded
// weight vector is reused by CB channels.
constexpr int64_t V = 8;  // columns per chunk: one AVX2 float vector, half an AVX-512 one

// V-wide vectors through the GCC/Clang vector extension: the compiler lowers them to the widest
// instructions -march allows (SSE, AVX2, AVX-512, NEON, or scalar code). Plain loops were tried
// first; GCC then vectorised across the taps (gathers) instead of along the row, 2x slower.
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(V * sizeof(float))));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(V * sizeof(double))));
};
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
inline Vec<T> vload(const T* p) {  // unaligned load (memcpy compiles to one vector load)
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Store the first n (<= V) lanes of v at p.
template <typename T>
inline void vstore(T* p, const Vec<T>& v, int64_t n) {
  if (n == V) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    T tmp[V];
    std::memcpy(tmp, &v, sizeof(v));
    std::copy(tmp, tmp + n, p);
  }
}

struct Padded {
  int64_t P, rows, cols, stride, plane;  // plane: elements per padded plane
  Padded(int64_t h, int64_t w, int64_t p) : P(p), rows(h), cols(w) {
    stride = (w + V - 1) / V * V + 2 * p;
    plane = (h + 2 * p) * stride;
  }
};

// Copy n planes of rows x cols (dense) into zero-padded planes at dst.
template <typename T>
void pad_planes(const T* src, T* dst, int64_t n, const Padded& pd) {
  std::fill(dst, dst + n * pd.plane, T(0));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < pd.rows; ++r)
      std::copy(src + (i * pd.rows + r) * pd.cols, src + (i * pd.rows + r + 1) * pd.cols,
                dst + i * pd.plane + (r + pd.P) * pd.stride + pd.P);
}

// out[c, ho, wo0 + i] for CB channels: sum over taps of wrow_k[wo0 + i] * xpad_c[ho + kh][wo0 + kw + i].
template <typename T, int CB>
inline void forward_chunk(const T* xp, const T* wbuf, T* out, const Geometry& g, const Padded& pd, int64_t ho,
                          int64_t wo0, int64_t OHW, int64_t WoP) {
  Vec<T> acc[CB] = {};
  for (int64_t kh = 0; kh < g.K; ++kh) {
    const T* xr = xp + (ho + kh) * pd.stride + wo0;
    const T* wr = wbuf + kh * g.K * WoP + wo0;
    for (int64_t kw = 0; kw < g.K; ++kw) {
      const Vec<T> wv = vload(wr + kw * WoP);
      for (int cb = 0; cb < CB; ++cb) acc[cb] += wv * vload(xr + cb * pd.plane + kw);
    }
  }
  const int64_t n = std::min<int64_t>(V, g.Wo - wo0);
  for (int cb = 0; cb < CB; ++cb) vstore(out + cb * OHW + ho * g.Wo + wo0, acc[cb], n);
}

template <int CB, typename T>
inline void forward_row(const T* xp, const T* wbuf, T* out, const Geometry& g, const Padded& pd, int64_t ho,
                        int64_t OHW, int64_t WoP) {
  for (int64_t wo0 = 0; wo0 < g.Wo; wo0 += V) forward_chunk<T, CB>(xp, wbuf, out, g, pd, ho, wo0, OHW, WoP);
}

// scratch: at least forward_scratch(g) elements.
inline int64_t forward_scratch(const Geometry& g) {
  const Padded pd(g.H, g.W, g.P);
  const int64_t WoP = (g.Wo + V - 1) / V * V;
  return g.channels_per_group() * pd.plane + g.K * g.K * WoP;
}

template <typename T>
void forward_task_s1(const T* x, const T* w, T* out, const Geometry& g, int64_t task, T* scratch) {
  const int64_t b = task / g.G, grp = task % g.G, cg = g.channels_per_group();
  const int64_t OHW = g.Ho * g.Wo, KK = g.K * g.K, WoP = (g.Wo + V - 1) / V * V;
  const Padded pd(g.H, g.W, g.P);
  T* xpad = scratch;
  T* wbuf = scratch + cg * pd.plane;  // the KK weight rows of one output row, each padded to WoP
  pad_planes(x + (b * g.C + grp * cg) * g.H * g.W, xpad, cg, pd);
  const T* wg = w + (b * g.G + grp) * KK * OHW;
  T* og = out + (b * g.C + grp * cg) * OHW;
  for (int64_t ho = 0; ho < g.Ho; ++ho) {
    for (int64_t k = 0; k < KK; ++k) {
      std::copy(wg + k * OHW + ho * g.Wo, wg + k * OHW + (ho + 1) * g.Wo, wbuf + k * WoP);
      std::fill(wbuf + k * WoP + g.Wo, wbuf + (k + 1) * WoP, T(0));
    }
    int64_t c = 0;
    for (; c + 8 <= cg; c += 8) forward_row<8>(xpad + c * pd.plane, wbuf, og + c * OHW, g, pd, ho, OHW, WoP);
    for (; c + 4 <= cg; c += 4) forward_row<4>(xpad + c * pd.plane, wbuf, og + c * OHW, g, pd, ho, OHW, WoP);
    for (; c < cg; ++c) forward_row<1>(xpad + c * pd.plane, wbuf, og + c * OHW, g, pd, ho, OHW, WoP);
  }
}

// gw[kh*K + kw, ho, wo0 + i] for KB consecutive kw: sum over the group's channels of
// gout_c[ho][wo0 + i] * xpad_c[ho + kh][wo0 + kw + i].
template <typename T, int KB>
inline void grad_w_chunk(const T* xpad, const T* gopad, T* gw, const Geometry& g, const Padded& pd, int64_t ho,
                         int64_t kh, int64_t kw0, int64_t wo0, int64_t OHW) {
  Vec<T> acc[KB] = {};
  const int64_t cg = g.channels_per_group();
  for (int64_t c = 0; c < cg; ++c) {
    const Vec<T> gv = vload(gopad + c * pd.plane + (ho + g.P) * pd.stride + g.P + wo0);
    const T* xr = xpad + c * pd.plane + (ho + kh) * pd.stride + wo0 + kw0;
    for (int kb = 0; kb < KB; ++kb) acc[kb] += gv * vload(xr + kb);
  }
  const int64_t n = std::min<int64_t>(V, g.Wo - wo0);
  for (int kb = 0; kb < KB; ++kb) vstore(gw + (kh * g.K + kw0 + kb) * OHW + ho * g.Wo + wo0, acc[kb], n);
}

// gx[c, ih, iw0 + i] for CB channels: sum over taps of wpad_k[ih + 2P - kh][iw0 + 2P - kw + i] *
// gopad_c[same]; the padded planes make out-of-range output positions contribute zero.
template <typename T, int CB>
inline void grad_x_chunk(const T* wpad, const T* gopad, T* gx, const Geometry& g, const Padded& pd, int64_t ih,
                         int64_t iw0) {
  Vec<T> acc[CB] = {};
  for (int64_t kh = 0; kh < g.K; ++kh) {
    const int64_t row = (ih + 2 * g.P - kh) * pd.stride + iw0 + 2 * g.P;
    for (int64_t kw = 0; kw < g.K; ++kw) {
      const int64_t off = row - kw;
      const Vec<T> wv = vload(wpad + (kh * g.K + kw) * pd.plane + off);
      for (int cb = 0; cb < CB; ++cb) acc[cb] += wv * vload(gopad + cb * pd.plane + off);
    }
  }
  const int64_t n = std::min<int64_t>(V, g.W - iw0), HW = g.H * g.W;
  for (int cb = 0; cb < CB; ++cb) vstore(gx + cb * HW + ih * g.W + iw0, acc[cb], n);
}

template <int CB, typename T>
inline void grad_x_row(const T* wpad, const T* gopad, T* gx, const Geometry& g, const Padded& pd, int64_t ih) {
  for (int64_t iw0 = 0; iw0 < g.W; iw0 += V) grad_x_chunk<T, CB>(wpad, gopad, gx, g, pd, ih, iw0);
}

inline int64_t backward_scratch(const Geometry& g) {
  const Padded pd(g.H, g.W, g.P);
  return (2 * g.channels_per_group() + g.K * g.K) * pd.plane;
}

template <int KB, typename T>
inline void grad_w_row(const T* xpad, const T* gopad, T* gwg, const Geometry& g, const Padded& pd, int64_t ho,
                       int64_t kh, int64_t kw0, int64_t OHW) {
  for (int64_t wo0 = 0; wo0 < g.Wo; wo0 += V) grad_w_chunk<T, KB>(xpad, gopad, gwg, g, pd, ho, kh, kw0, wo0, OHW);
}

// Both gradients of one (batch, group) task; gx and gw are written (not accumulated).
template <typename T>
void backward_task_s1(const T* gout, const T* x, const T* w, T* gx, T* gw, const Geometry& g, int64_t task,
                      T* scratch) {
  const int64_t b = task / g.G, grp = task % g.G, cg = g.channels_per_group();
  const int64_t HW = g.H * g.W, OHW = g.Ho * g.Wo, KK = g.K * g.K;
  const Padded pd(g.H, g.W, g.P);
  T* gopad = scratch;
  T* xpad = scratch + cg * pd.plane;
  T* wpad = scratch + 2 * cg * pd.plane;
  pad_planes(gout + (b * g.C + grp * cg) * OHW, gopad, cg, pd);
  if (gw) {
    pad_planes(x + (b * g.C + grp * cg) * HW, xpad, cg, pd);
    T* gwg = gw + (b * g.G + grp) * KK * OHW;
    for (int64_t ho = 0; ho < g.Ho; ++ho)
      for (int64_t kh = 0; kh < g.K; ++kh) {
        int64_t kw = 0;  // blocks of up to 8 taps share each loaded gout vector
        for (; kw + 8 <= g.K; kw += 8) grad_w_row<8>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW);
        switch (g.K - kw) {
          case 7: grad_w_row<7>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 6: grad_w_row<6>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 5: grad_w_row<5>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 4: grad_w_row<4>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 3: grad_w_row<3>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 2: grad_w_row<2>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          case 1: grad_w_row<1>(xpad, gopad, gwg, g, pd, ho, kh, kw, OHW); break;
          default: break;
        }
      }
  }
  if (gx) {
    pad_planes(w + (b * g.G + grp) * KK * OHW, wpad, KK, pd);
    T* gxg = gx + (b * g.C + grp * cg) * HW;
    for (int64_t ih = 0; ih < g.H; ++ih) {
      int64_t c = 0;
      for (; c + 8 <= cg; c += 8) grad_x_row<8>(wpad, gopad + c * pd.plane, gxg + c * HW, g, pd, ih);
      for (; c + 4 <= cg; c += 4) grad_x_row<4>(wpad, gopad + c * pd.plane, gxg + c * HW, g, pd, ih);
      for (; c < cg; ++c) grad_x_row<1>(wpad, gopad + c * pd.plane, gxg + c * HW, g, pd, ih);
    }
  }
}

// ---- Stride-1 forward, channels-last (channels per group a multiple of 8, K = 3, 5 or 7) ----------
//
// Column chunks (forward_chunk) read x at K shifted, mostly cache-line-splitting addresses per tap.
// Here the group's channels are the vector lanes instead: the task's planes are transposed into a
// zero-padded [rows][pixels][channels] buffer, so one load is one pixel's CW channels (a whole,
// aligned cache line for 16 floats), and each loaded pixel is reused by every output pixel of an
// R-wide block that reads it (R + K - 1 loads per row of taps instead of R * K). The weight is one
// scalar per (tap, pixel), broadcast and shared by NC channel vectors.
template <typename T, int N>
struct VecN;
template <>
struct VecN<float, 8> {
  typedef float type __attribute__((vector_size(8 * sizeof(float))));
};
template <>
struct VecN<float, 16> {
  typedef float type __attribute__((vector_size(16 * sizeof(float))));
};
template <>
struct VecN<double, 8> {
  typedef double type __attribute__((vector_size(8 * sizeof(double))));
};

constexpr int64_t kAlign = 64;  // scratch alignment (bytes): pixels of 16 floats start on cache lines

template <typename T, int CW, int NC, int R, int K>
inline void forward_cl_block(const T* xt, const T* wrow, T* tmp, int64_t cg, int64_t px_row, int64_t ho, int64_t wo0,
                             int64_t c0, int64_t wstride) {
  typedef typename VecN<T, CW>::type VT;
  VT acc[R][NC] = {};
  for (int kh = 0; kh < K; ++kh) {
    const T* xr = xt + ((ho + kh) * px_row + wo0) * cg + c0;
    const T* wr = wrow + kh * K * wstride + wo0;  // tap k's weights for this row: wrow + k * wstride
#pragma GCC unroll 16
    for (int j = 0; j < R + K - 1; ++j) {
      VT xv[NC];
      for (int n = 0; n < NC; ++n) std::memcpy(&xv[n], xr + j * cg + n * CW, sizeof(VT));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const int kw = j - r;
        if (kw < 0 || kw >= K) continue;  // decided at compile time once both loops are unrolled
        const T wv = wr[kw * wstride + r];
        for (int n = 0; n < NC; ++n) acc[r][n] += wv * xv[n];
      }
    }
  }
  std::memcpy(tmp, acc, sizeof(acc));  // tmp[r][NC * CW]
}

template <typename T, int CW, int NC, int R, int K>
void forward_task_cl(const T* x, const T* w, T* out, const Geometry& g, int64_t task, T* scratch) {
  const int64_t b = task / g.G, grp = task % g.G, cg = g.channels_per_group();
  const int64_t OHW = g.Ho * g.Wo, KK = K * K, WoP = (g.Wo + V - 1) / V * V, px_row = WoP + 2 * g.P;
  T* xt = scratch;                            // [H + 2P][px_row][cg]
  T* wbuf = xt + (g.H + 2 * g.P) * px_row * cg;  // KK weight rows of one output row, each padded to WoP
  T* tmp = wbuf + KK * WoP;                      // one block's results [R][NC * CW]
  std::fill(xt, wbuf, T(0));
  const T* xg = x + (b * g.C + grp * cg) * g.H * g.W;
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t h = 0; h < g.H; ++h)
      for (int64_t ww = 0; ww < g.W; ++ww) xt[((h + g.P) * px_row + ww + g.P) * cg + c] = xg[(c * g.H + h) * g.W + ww];
  const T* wg = w + (b * g.G + grp) * KK * OHW;
  T* og = out + (b * g.C + grp * cg) * OHW;
  // Rows a whole number of blocks wide read the weights in place; others go through wbuf, whose rows
  // are zero-padded to WoP so that the last block's extra columns read zeros inside the buffer.
  const bool direct = g.Wo % R == 0;
  for (int64_t ho = 0; ho < g.Ho; ++ho) {
    if (!direct)
      for (int64_t k = 0; k < KK; ++k) {
        std::copy(wg + k * OHW + ho * g.Wo, wg + k * OHW + (ho + 1) * g.Wo, wbuf + k * WoP);
        std::fill(wbuf + k * WoP + g.Wo, wbuf + (k + 1) * WoP, T(0));
      }
    const T* wrow = direct ? wg + ho * g.Wo : wbuf;
    const int64_t wstride = direct ? OHW : WoP;
    for (int64_t wo0 = 0; wo0 < g.Wo; wo0 += R) {
      const int64_t n = std::min<int64_t>(R, g.Wo - wo0);
      for (int64_t c0 = 0; c0 < cg; c0 += CW * NC) {
        forward_cl_block<T, CW, NC, R, K>(xt, wrow, tmp, cg, px_row, ho, wo0, c0, wstride);
        for (int64_t c = 0; c < CW * NC; ++c)
          for (int64_t r = 0; r < n; ++r) og[(c0 + c) * OHW + ho * g.Wo + wo0 + r] = tmp[r * CW * NC + c];
      }
    }
  }
}

inline int64_t forward_cl_scratch(const Geometry& g) {
  const int64_t WoP = (g.Wo + V - 1) / V * V, px_row = WoP + 2 * g.P;
  return (g.H + 2 * g.P) * px_row * g.channels_per_group() + g.K * g.K * WoP + 8 * 16;
}

template <typename T>
using ForwardTask = void (*)(const T*, const T*, T*, const Geometry&, int64_t, T*);

template <typename T, int CW, int NC, int R>
ForwardTask<T> forward_cl_for_k(int64_t K) {
  switch (K) {
    case 3: return &forward_task_cl<T, CW, NC, R, 3>;
    case 5: return &forward_task_cl<T, CW, NC, R, 5>;
    case 7: return &forward_task_cl<T, CW, NC, R, 7>;
    default: return nullptr;
  }
}

// Blocks of 7 output pixels for rows of 7, 14, 28... (RedNet's 7x7 to 28x28 stages), else 8.
template <typename T, int CW, int NC>
ForwardTask<T> forward_cl_for(const Geometry& g) {
  return g.Wo % 8 != 0 && g.Wo % 7 == 0 ? forward_cl_for_k<T, CW, NC, 7>(g.K) : forward_cl_for_k<T, CW, NC, 8>(g.K);
}

// The channels-last kernel for this geometry, or nullptr (then the column-chunk kernel runs).
template <typename T>
ForwardTask<T> forward_cl_kernel(const Geometry& g) {
  const int64_t cg = g.channels_per_group();
  if (g.S != 1 || cg % 8 != 0) return nullptr;
  if constexpr (std::is_same<T, float>::value) {
#ifdef __AVX512F__
    if (cg % 16 == 0) return forward_cl_for<T, 16, 1>(g);  // one zmm per pixel
#else
    if (cg % 16 == 0) return forward_cl_for_k<T, 8, 2, 4>(g.K);  // two ymm per pixel (AVX2: 16 registers)
#endif
  }
  return forward_cl_for<T, 8, 1>(g);
}

// Scratch of n elements aligned to kAlign bytes.
template <typename T>
struct Scratch {
  std::unique_ptr<T[]> mem;
  T* data;
  explicit Scratch(int64_t n) : mem(new T[n + kAlign / sizeof(T)]) {
    const auto p = reinterpret_cast<std::uintptr_t>(mem.get());
    data = reinterpret_cast<T*>((p + kAlign - 1) / kAlign * kAlign);
  }
};

// Tasks [begin, end) with one scratch buffer (what a thread of at::parallel_for / OpenMP runs).
// Stride 1 takes the padded-plane kernels; other strides the generic loops. gx must be zero-filled
// by the caller when g.S != 1 (see needs_zeroed_grad_x).
inline bool needs_zeroed_grad_x(const Geometry& g) { return g.S != 1; }

template <typename T>
void forward_range(const T* x, const T* w, T* out, const Geometry& g, int64_t begin, int64_t end) {
  if (g.S != 1) {
    for (int64_t t = begin; t < end; ++t) forward_task_generic(x, w, out, g, t);
    return;
  }
  if (ForwardTask<T> cl = forward_cl_kernel<T>(g)) {
    Scratch<T> scratch(forward_cl_scratch(g));
    for (int64_t t = begin; t < end; ++t) cl(x, w, out, g, t, scratch.data);
    return;
  }
  Scratch<T> scratch(forward_scratch(g));
  for (int64_t t = begin; t < end; ++t) forward_task_s1(x, w, out, g, t, scratch.data);
}

template <typename T>
void backward_range(const T* gout, const T* x, const T* w, T* gx, T* gw, const Geometry& g, int64_t begin,
                    int64_t end) {
  if (g.S != 1) {
    for (int64_t t = begin; t < end; ++t) backward_task_generic(gout, x, w, gx, gw, g, t);
    return;
  }
  Scratch<T> scratch(backward_scratch(g));
  for (int64_t t = begin; t < end; ++t) backward_task_s1(gout, x, w, gx, gw, g, t, scratch.data);
}

// Shape checks shared by both frameworks; returns an empty string when the shapes are valid.
inline const char* check_geometry(int64_t C, int64_t H, int64_t W, int64_t G, int64_t K, int64_t S, int64_t wk,
                                  int64_t Ho, int64_t Wo) {
  if (K < 1 || K % 2 == 0 || K > 63) return "kernel_size must be odd and in [1, 63]";
  if (S < 1) return "stride must be >= 1";
  if (G < 1 || C % G != 0) return "channels must be divisible by the number of groups (weight dim 1)";
  if (wk != K * K) return "weight dim 2 must equal kernel_size * kernel_size";
  if (H % S != 0 || W % S != 0) return "stride must divide the input height and width";
  if (Ho != H / S || Wo != W / S) return "weight spatial size must equal the input size divided by the stride";
  return "";
}

}  // namespace mlx_involution
