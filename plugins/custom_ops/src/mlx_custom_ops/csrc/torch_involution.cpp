// PyTorch operator mlx_custom_ops::involution (+ its backward) registered through TORCH_LIBRARY.
// Autograd and the fake (meta) kernels are registered from Python (torch.library.register_autograd
// / register_fake), so torch.compile and torch.export can trace through the operator.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <ATen/ATen.h>

#include <string>
#include <tuple>

#include "involution_cpu.h"

using mlx_involution::Geometry;

static Geometry geometry(const at::Tensor& x, const at::Tensor& w, int64_t kernel_size, int64_t stride) {
  TORCH_CHECK(x.dim() == 4, "involution: x must be 4-D [B, C, H, W]");
  TORCH_CHECK(w.dim() == 5, "involution: weight must be 5-D [B, G, K*K, Ho, Wo]");
  TORCH_CHECK(x.scalar_type() == w.scalar_type(), "involution: x and weight dtypes differ");
  Geometry g;
  g.B = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.G = w.size(1);
  g.K = kernel_size;
  g.S = stride;
  g.P = (kernel_size - 1) / 2;
  g.Ho = w.size(3);
  g.Wo = w.size(4);
  TORCH_CHECK(w.size(0) == g.B, "involution: x and weight batch sizes differ");
  std::string err = mlx_involution::check_geometry(g.C, g.H, g.W, g.G, g.K, g.S, w.size(2), g.Ho, g.Wo);
  TORCH_CHECK(err.empty(), "involution: ", err);
  return g;
}

at::Tensor involution_cpu(const at::Tensor& x_, const at::Tensor& w_, int64_t kernel_size, int64_t stride) {
  const Geometry g = geometry(x_, w_, kernel_size, stride);
  auto x = x_.contiguous();
  auto w = w_.contiguous();
  auto out = at::empty({g.B, g.C, g.Ho, g.Wo}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "involution_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.G, 1, [&](int64_t begin, int64_t end) {
      mlx_involution::forward_range(xp, wp, op, g, begin, end);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> involution_backward_cpu(const at::Tensor& gout_, const at::Tensor& x_,
                                                           const at::Tensor& w_, int64_t kernel_size, int64_t stride) {
  const Geometry g = geometry(x_, w_, kernel_size, stride);
  auto x = x_.contiguous();
  auto w = w_.contiguous();
  auto gout = gout_.contiguous();
  auto gx = mlx_involution::needs_zeroed_grad_x(g) ? at::zeros_like(x) : at::empty_like(x);
  auto gw = at::empty_like(w);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "involution_backward_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    const scalar_t* gop = gout.data_ptr<scalar_t>();
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    scalar_t* gwp = gw.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.G, 1, [&](int64_t begin, int64_t end) {
      mlx_involution::backward_range(gop, xp, wp, gxp, gwp, g, begin, end);
    });
  });
  return {gx, gw};
}

TORCH_LIBRARY(mlx_custom_ops, m) {
  m.def("involution(Tensor x, Tensor weight, int kernel_size, int stride) -> Tensor");
  m.def("involution_backward(Tensor grad_out, Tensor x, Tensor weight, int kernel_size, int stride) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mlx_custom_ops, CPU, m) {
  m.impl("involution", &involution_cpu);
  m.impl("involution_backward", &involution_backward_cpu);
}
