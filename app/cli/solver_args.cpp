#include "solver_args.h"

#include "util/errors.h"

namespace sparselab::cli {

solve::SolverOptions solverOptionsFromArgs(const Args& args, solve::SolverOptions base, bool* dense)
{
    if (const auto method = args.value("method")) {
        if (dense && *method == "dense")
            *dense = true;
        else
            base.method = solve::parseMethod(*method);
    }
    if (args.value("sparsity") && args.value("nm"))
        throw optionError("--nm", "give either --sparsity or --nm, not both");
    if (args.value("sparsity")) {
        base.sparsity = args.doubleOr("sparsity", base.sparsity);
        base.nmN = base.nmM = 0;
    } else if (args.value("method") && base.method == solve::Method::Rtn && !args.value("nm")) {
        base.sparsity = 0.0; // rtn prunes nothing: no --sparsity needed
    }
    if (const auto nm = args.value("nm")) {
        const auto [n, m] = solve::parseNm(*nm, "--nm");
        base.nmN = n;
        base.nmM = m;
    }
    base.quant.bits = int(args.intOr("bits", base.quant.bits, -1000, 1000));
    base.quant.groupSize = args.intOr("group", base.quant.groupSize, 0, int64_t(1) << 40);
    if (args.flag("sym"))
        base.quant.symmetric = true;
    if (args.flag("act-order"))
        base.quant.actOrder = true;
    if (args.flag("static-groups"))
        base.quant.staticGroups = true;
    if (args.flag("fp16-scale"))
        base.quant.fp16Scale = true;
    if (args.flag("signed-scale"))
        base.quant.signedScale = true;
    base.blocksize = args.intOr("blocksize", base.blocksize, 1, int64_t(1) << 40);
    base.damp = args.doubleOr("damp", base.damp);
    base.validate(1); // ranges; the layer's own width is checked again by the solver
    return base;
}

} // namespace sparselab::cli
