#!/usr/bin/env python3
"""Reference numbers for alnrisk's statistics, from scipy, statsmodels and numpy (not from alnrisk).

    pip install numpy scipy statsmodels
    python3 tests/golden/make_stats_golden.py > tests/data/golden/stats_golden.json

Data: a small seeded dataset (n = 120, three covariates, a logistic outcome), stored in the JSON with the results:
- Student and Welch t-tests of covariate 1 between outcome groups (scipy.stats.ttest_ind);
- unpenalised logistic regression coefficients, standard errors, z and p (statsmodels Logit);
- AUC of the fitted linear predictor and of covariate 1, DeLong variance (an independent numpy implementation of
  DeLong 1988 with mid-rank ties), and the paired DeLong z / p;
- Hosmer-Lemeshow with 10 groups from numpy.array_split of the cases sorted by fitted probability (chi2, df = 8);
- Mann-Whitney U (scipy.stats.mannwhitneyu, method="asymptotic"), on covariate 1 and on a tied integer variable;
- chi-square tests of independence (scipy.stats.chi2_contingency, Yates for 2x2) and Fisher's exact test
  (scipy.stats.fisher_exact) on small tables;
- Shapiro-Wilk (scipy.stats.shapiro) on covariate 1 (n = 120) and on its first 10 values;
- LASSO logistic regression at fixed lambda: scikit-learn LogisticRegression with an L1 penalty, solver saga,
  C = 1 / (n lambda), tolerance 1e-15 (the same objective as glmnet with an unpenalised intercept), on the three
  covariates plus three pure-noise columns;
- net benefit of the fitted probabilities at thresholds 0.1, 0.3, 0.5 (numpy, from the definition).
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
from sklearn.linear_model import LogisticRegression

ties = np.round(x[:, 1] * 2).astype(int)
mw1 = st.mannwhitneyu(x[y == 1, 0], x[y == 0, 0], method="asymptotic")
mw2 = st.mannwhitneyu(ties[y == 1], ties[y == 0], method="asymptotic")
tab23 = np.array([[12, 30, 18], [20, 25, 15]])
tab22 = np.array([[3, 9], [11, 4]])
c23 = st.chi2_contingency(tab23)
c22 = st.chi2_contingency(tab22)
fe = st.fisher_exact(tab22)
sw120 = st.shapiro(x[:, 0])
sw10 = st.shapiro(x[:10, 0])
xl = np.hstack([x, rng.normal(size=(n, 3))])
lasso = {}
for lam in (0.02, 0.06):
    kw = dict(C=1.0 / (n * lam), solver="saga", tol=1e-15, max_iter=1_000_000)
    try:
        m = LogisticRegression(l1_ratio=1.0, **kw).fit(xl, y)
    except TypeError:
        m = LogisticRegression(penalty="l1", **kw).fit(xl, y)
    lasso[str(lam)] = [float(m.intercept_[0])] + m.coef_[0].tolist()
nb = {}
for pt in (0.1, 0.3, 0.5):
    call = prob >= pt
    tp, fp = np.sum(call & (y == 1)), np.sum(call & (y == 0))
    nb[str(pt)] = float(tp / n - fp / n * pt / (1 - pt))

print(json.dumps({
    "x": x.tolist(), "y": y.tolist(),
    "ttest_student": [float(t_s.statistic), float(t_s.pvalue)],
    "ttest_welch": [float(t_w.statistic), float(t_w.pvalue), float(t_w.df)],
    "logit_coef": fit.params.tolist(), "logit_se": fit.bse.tolist(), "logit_z": fit.tvalues.tolist(),
    "logit_p": fit.pvalues.tolist(),
    "auc_lp": auc_lp, "var_lp": var_lp, "auc_x1": auc_x1, "var_x1": var_x1,
    "delong_paired": [z, p],
    "hl": [float(h), float(st.chi2.sf(h, 8))],
    "mannwhitney_x1": [float(mw1.statistic), float(mw1.pvalue)],
    "ties": ties.tolist(), "mannwhitney_ties": [float(mw2.statistic), float(mw2.pvalue)],
    "table23": tab23.tolist(), "chi2_23": [float(c23.statistic), float(c23.dof), float(c23.pvalue)],
    "table22": tab22.tolist(), "chi2_22": [float(c22.statistic), float(c22.dof), float(c22.pvalue)],
    "fisher_22": float(fe.pvalue),
    "shapiro_120": [float(sw120.statistic), float(sw120.pvalue)],
    "shapiro_10": [float(sw10.statistic), float(sw10.pvalue)],
    "x_lasso": xl.tolist(), "lasso": lasso,
    "net_benefit": nb,
}, indent=1))
