// Observable Framework: the CFO dashboard of tokenledger, built as static pages
// from the reporting views (src/data/ledger.json.js reads them at build time).
export default {
  title: "tokenledger: AI spend and what it bought",
  root: "src",
  output: "dist",
  theme: "air",
  sidebar: false,
  toc: false,
  pager: false,
  search: false,
  // the page loads nothing from elsewhere: no web fonts
  globalStylesheets: [],
  footer: "Built by Observable Framework from tokenledger's reporting views."
};
