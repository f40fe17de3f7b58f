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
void forward_task(const T* x, const T* w, T* out, const Geometry& g, int64_t task) {
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
void backward_task(const T* gout, const T* x, const T* w, T* gx, T* gw, const Geometry& g, int64_t task) {
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
