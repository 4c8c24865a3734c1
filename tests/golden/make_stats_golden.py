#!/usr/bin/env python3
"""Reference numbers for alnrisk's statistics, from scipy, statsmodels and numpy (not from alnrisk).

    pip install numpy scipy statsmodels
    python3 tests/golden/make_stats_golden.py > tests/data/golden/stats_golden.json

Data: a small seeded dataset (n = 120, three covariates, a logistic outcome), stored in the JSON with the results:
- Student and Welch t-tests of covariate 1 between outcome groups (scipy.stats.ttest_ind);
- unpenalised logistic regression coefficients, standard errors, z and p (statsmodels Logit);
- AUC of the fitted linear predictor and of covariate 1, DeLong variance (an independent numpy implementation of
  DeLong 1988 with mid-rank ties), and the paired DeLong z / p;
- Hosmer-Lemeshow with 10 groups from numpy.array_split of the cases sorted by fitted probability (chi2, df = 8).
"""
import json

import numpy as np
import scipy.stats as st
import statsmodels.api as sm

rng = np.random.default_rng(2026)
n = 120
x = rng.normal(size=(n, 3))
lp = -0.3 + 1.1 * x[:, 0] - 0.7 * x[:, 1] + 0.2 * x[:, 2]
y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)

t_s = st.ttest_ind(x[y == 1, 0], x[y == 0, 0], equal_var=True)
t_w = st.ttest_ind(x[y == 1, 0], x[y == 0, 0], equal_var=False)
fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=100)
prob = fit.predict(sm.add_constant(x))
score_lp = sm.add_constant(x) @ fit.params


def components(s, yy):
    pos, neg = s[yy == 1], s[yy == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(1), psi.mean(0)


def delong(s, yy):
    v10, v01 = components(s, yy)
    return float(v10.mean()), float(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))


def delong_paired(a, b, yy):
    a10, a01 = components(a, yy)
    b10, b01 = components(b, yy)
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(a10) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(a01)
    z = (a10.mean() - b10.mean()) / np.sqrt(var)
    return float(z), float(2 * st.norm.sf(abs(z)))


order = np.argsort(prob, kind="stable")
h = 0.0
for grp in np.array_split(order, 10):
    o, e, m = y[grp].sum(), prob[grp].sum(), len(grp)
    h += (o - e) ** 2 / (e * (1 - e / m))

auc_lp, var_lp = delong(score_lp, y)
auc_x1, var_x1 = delong(x[:, 0], y)
z, p = delong_paired(score_lp, x[:, 0], y)
print(json.dumps({
    "x": x.tolist(), "y": y.tolist(),
    "ttest_student": [float(t_s.statistic), float(t_s.pvalue)],
    "ttest_welch": [float(t_w.statistic), float(t_w.pvalue), float(t_w.df)],
    "logit_coef": fit.params.tolist(), "logit_se": fit.bse.tolist(), "logit_z": fit.tvalues.tolist(),
    "logit_p": fit.pvalues.tolist(),
    "auc_lp": auc_lp, "var_lp": var_lp, "auc_x1": auc_x1, "var_x1": var_x1,
    "delong_paired": [z, p],
    "hl": [float(h), float(st.chi2.sf(h, 8))],
}, indent=1))
