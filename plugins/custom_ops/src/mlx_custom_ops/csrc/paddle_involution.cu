// CUDA kernels of the Paddle `mlx_involution` operator (compiled only with a CUDA build of Paddle
// and nvcc). One thread per output element (forward), per input element (grad x) and per weight
// element (grad w): gathers instead of scatters, so no atomics are needed.
#include <vector>

#include "paddle/extension.h"

template <typename T>
__global__ void inv_fwd(const T* x, const T* w, T* out, int64_t n, int C, int H, int W, int G, int K, int S, int Ho,
                        int Wo) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int wo = i % Wo, ho = (i / Wo) % Ho, c = (i / ((int64_t)Wo * Ho)) % C;
  const int64_t b = i / ((int64_t)Wo * Ho * C);
  const int g = c / (C / G), P = (K - 1) / 2;
  T acc = 0;
  for (int kh = 0; kh < K; ++kh) {
    const int ih = ho * S - P + kh;
    if (ih < 0 || ih >= H) continue;
    for (int kw = 0; kw < K; ++kw) {
      const int iw = wo * S - P + kw;
      if (iw < 0 || iw >= W) continue;
      acc += w[(((b * G + g) * K * K + kh * K + kw) * Ho + ho) * Wo + wo] * x[((b * C + c) * H + ih) * W + iw];
    }
  }
  out[i] = acc;
}

template <typename T>
__global__ void inv_bwd_x(const T* gout, const T* w, T* gx, int64_t n, int C, int H, int W, int G, int K, int S,
                          int Ho, int Wo) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int iw = i % W, ih = (i / W) % H, c = (i / ((int64_t)W * H)) % C;
  const int64_t b = i / ((int64_t)W * H * C);
  const int g = c / (C / G), P = (K - 1) / 2;
  T acc = 0;
  for (int kh = 0; kh < K; ++kh) {
    const int th = ih + P - kh;
    if (th < 0 || th % S) continue;
    const int ho = th / S;
    if (ho >= Ho) continue;
    for (int kw = 0; kw < K; ++kw) {
      const int tw = iw + P - kw;
      if (tw < 0 || tw % S) continue;
      const int wo = tw / S;
      if (wo >= Wo) continue;
      acc += w[(((b * G + g) * K * K + kh * K + kw) * Ho + ho) * Wo + wo] * gout[((b * C + c) * Ho + ho) * Wo + wo];
    }
  }
  gx[i] = acc;
}

template <typename T>
__global__ void inv_bwd_w(const T* gout, const T* x, T* gw, int64_t n, int C, int H, int W, int G, int K, int S,
                          int Ho, int Wo) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int wo = i % Wo, ho = (i / Wo) % Ho, k = (i / ((int64_t)Wo * Ho)) % (K * K);
  const int64_t bg = i / ((int64_t)Wo * Ho * K * K);
  const int g = bg % G, cg = C / G, P = (K - 1) / 2;
  const int64_t b = bg / G;
  const int ih = ho * S - P + k / K, iw = wo * S - P + k % K;
  T acc = 0;
  if (ih >= 0 && ih < H && iw >= 0 && iw < W)
    for (int c = g * cg; c < (g + 1) * cg; ++c)
      acc += gout[((b * C + c) * Ho + ho) * Wo + wo] * x[((b * C + c) * H + ih) * W + iw];
  gw[i] = acc;
}

static inline int blocks(int64_t n) { return (int)((n + 255) / 256); }

std::vector<paddle::Tensor> involution_cuda_forward(const paddle::Tensor& x, const paddle::Tensor& w, int kernel_size,
                                                    int stride) {
  auto s = x.shape(), ws = w.shape();
  auto out = paddle::empty({s[0], s[1], ws[3], ws[4]}, x.dtype(), x.place());
  int64_t n = out.numel();
  PD_DISPATCH_FLOATING_TYPES(x.type(), "involution_cuda_forward", ([&] {
                               inv_fwd<data_t><<<blocks(n), 256, 0, x.stream()>>>(
                                   x.data<data_t>(), w.data<data_t>(), out.data<data_t>(), n, s[1], s[2], s[3], ws[1],
                                   kernel_size, stride, ws[3], ws[4]);
                             }));
  return {out};
}

std::vector<paddle::Tensor> involution_cuda_backward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                     const paddle::Tensor& gout, int kernel_size, int stride) {
  auto s = x.shape(), ws = w.shape();
  auto gx = paddle::empty(s, x.dtype(), x.place());
  auto gw = paddle::empty(ws, w.dtype(), w.place());
  int64_t nx = gx.numel(), nw = gw.numel();
  PD_DISPATCH_FLOATING_TYPES(x.type(), "involution_cuda_backward", ([&] {
                               inv_bwd_x<data_t><<<blocks(nx), 256, 0, x.stream()>>>(
                                   gout.data<data_t>(), w.data<data_t>(), gx.data<data_t>(), nx, s[1], s[2], s[3],
                                   ws[1], kernel_size, stride, ws[3], ws[4]);
                               inv_bwd_w<data_t><<<blocks(nw), 256, 0, x.stream()>>>(
                                   gout.data<data_t>(), x.data<data_t>(), gw.data<data_t>(), nw, s[1], s[2], s[3],
                                   ws[1], kernel_size, stride, ws[3], ws[4]);
                             }));
  return {gx, gw};
}
